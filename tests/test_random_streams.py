"""The named random streams: reproducible, apart, and as earlier releases drew them."""

import numpy as np
import pytest

from skflow._random_streams import SEED_MAX, derived_seed, derived_seeds


def test_streams_keep_the_seeds_of_earlier_releases():
    """A fixed random_state must keep giving the same models and rows across versions: fit's
    two seeds are the first two draws, generated rows the third, and the detector's two
    streams the first draw XOR-ed with their constants."""
    first, second, third = np.random.RandomState(7).randint(SEED_MAX, size=3)
    assert derived_seeds(7, "initialisation", "batch_order") == (first, second)
    assert derived_seed(7, "generation") == third
    assert derived_seed(7, "latent_draws") == first
    assert derived_seed(7, "training_subset") == first ^ 0x2545F491
    assert derived_seed(7, "threshold_rows") == first ^ 0x5F3759DF


def test_an_int_repeats_and_an_instance_advances():
    assert derived_seed(3, "generation") == derived_seed(3, "generation")
    rng = np.random.RandomState(3)
    assert derived_seed(rng, "latent_draws") != derived_seed(rng, "latent_draws")


def test_streams_of_one_seed_differ_and_fit_a_torch_seed():
    seeds = derived_seeds(0, "initialisation", "batch_order", "generation", "training_subset",
                          "threshold_rows")
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= seed < 2**31 for seed in seeds)


def test_an_unknown_stream_is_refused():
    with pytest.raises(ValueError, match="unknown random stream"):
        derived_seed(0, "initialization")
