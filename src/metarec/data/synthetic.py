"""The built-in generated data set ``synthetic``: the default everywhere, fully offline.

Generative model (all draws from one seeded ``numpy.random.Generator``):

* **Side features.** Users have ``gender`` (2 values), ``age`` (7 groups) and
  ``occupation`` (21); items have ``genres`` (1-3 of 18), ``rate`` (4 MPAA-like
  levels) and a release ``year`` (uniform over ``year_range``).
* **Latent tastes** in ``R^d``. Every category value ``c`` of every field has a vector
  ``e_c ~ N(0, I/d)``. A user's taste is
  ``u = sqrt(feature_share) * mean(e_gender, e_age, e_occupation) * sqrt(3)
  + sqrt(1 - feature_share) * z_u`` with idiosyncratic ``z_u ~ N(0, I/d)``; an item's
  profile ``v`` is built the same way from its genres and rate. So part of a taste is
  predictable from features (cold start from features is learnable) and part is
  personal (adapting on a few ratings helps).
* **Biases.** ``b_u ~ N(0, user_bias_sd^2)``, ``b_i = w . f_i + N(0, item_bias_sd^2)``
  with a feature-driven part from the item's genres.
* **Rating.** ``r = clip(round(mu + b_u + b_i + scale * sqrt(d) * <u, v> + eps), 1, 5)`` with
  ``eps ~ N(0, noise_sd^2)``.
* **Who rates what.** Item popularity follows a power law (Zipf exponent
  ``popularity_exponent``); user activity is log-normal, clipped to
  ``[min_user_ratings, max_user_ratings]`` and scaled to about ``num_ratings`` in total.
  Each user rates distinct items drawn by popularity (Gumbel top-k).
* **Time.** Each user is active over a random window; a rating's timestamp is uniform in
  that window and never before the item's release year.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metarec.data.dataset import Dataset, build_dataset
from metarec.errors import ConfigError

GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
RATES = ("G", "PG", "PG-13", "R")
AGES = ("1", "18", "25", "35", "45", "50", "56")
SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass
class SyntheticConfig:
    """Sizes and strengths of the generated data set (see the module docstring)."""

    num_users: int = 2000
    num_items: int = 1500
    num_ratings: int = 150_000
    latent_dim: int = 8
    feature_share: float = 0.5
    interaction_scale: float = 0.9
    user_bias_sd: float = 0.45
    item_bias_sd: float = 0.35
    noise_sd: float = 0.35
    global_mean: float = 3.6
    popularity_exponent: float = 0.9
    min_user_ratings: int = 15
    max_user_ratings: int = 400
    year_range: tuple[int, int] = (1988, 2000)
    seed: int = 0

    def __post_init__(self) -> None:
        at_least = {"num_users": 1, "num_items": 1, "num_ratings": 1, "latent_dim": 1,
                    "interaction_scale": 0, "user_bias_sd": 0, "item_bias_sd": 0,
                    "noise_sd": 0, "popularity_exponent": 0, "min_user_ratings": 1,
                    "max_user_ratings": self.min_user_ratings, "seed": 0}
        for name, low in at_least.items():
            value = getattr(self, name)
            if not (value >= low and math.isfinite(value)):  # NaN fails both
                raise ConfigError(f"synthetic {name} must be >= {low}, got {value!r}")
        if not 0 <= self.feature_share <= 1:
            raise ConfigError(f"synthetic feature_share must be in [0, 1], got "
                              f"{self.feature_share!r}")
        if not math.isfinite(self.global_mean):
            raise ConfigError(f"synthetic global_mean must be a number, got "
                              f"{self.global_mean!r}")
        # Release years become timestamps, which pandas holds from 1678 to 2261.
        years = tuple(self.year_range)
        if len(years) != 2 or not 1678 <= years[0] <= years[1] <= 2261:
            raise ConfigError(f"synthetic year_range must be (first, last) with "
                              f"1678 <= first <= last <= 2261, got {self.year_range!r}")


def generate(config: SyntheticConfig | None = None) -> Dataset:
    """Generate the ``synthetic`` data set described in the module docstring."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    d = cfg.latent_dim

    def vectors(count: int) -> np.ndarray:
        return rng.normal(0.0, 1.0 / np.sqrt(d), size=(count, d))

    def blend(feature_part: np.ndarray, n: int) -> np.ndarray:
        own = vectors(n)
        norm = feature_part / (feature_part.std() * np.sqrt(d) + 1e-12)
        return np.sqrt(cfg.feature_share) * norm + np.sqrt(1 - cfg.feature_share) * own

    # Users and their features.
    n_users, n_items = cfg.num_users, cfg.num_items
    gender = rng.integers(0, 2, n_users)
    age = rng.choice(len(AGES), n_users, p=[0.04, 0.18, 0.35, 0.2, 0.1, 0.08, 0.05])
    occupation = rng.integers(0, 21, n_users)
    e_gender, e_age, e_occ = vectors(2), vectors(len(AGES)), vectors(21)
    user_taste = blend(e_gender[gender] + e_age[age] + e_occ[occupation], n_users)
    user_bias = rng.normal(0.0, cfg.user_bias_sd, n_users)

    # Items and their features.
    n_genres = rng.choice([1, 2, 3], n_items, p=[0.45, 0.4, 0.15])
    genre_sets = [rng.choice(len(GENRES), k, replace=False) for k in n_genres]
    genre_matrix = np.zeros((n_items, len(GENRES)))
    for i, genres in enumerate(genre_sets):
        genre_matrix[i, genres] = 1.0 / len(genres)
    rate = rng.choice(len(RATES), n_items, p=[0.1, 0.3, 0.3, 0.3])
    e_genre, e_rate = vectors(len(GENRES)), vectors(len(RATES))
    item_profile = blend(genre_matrix @ e_genre + e_rate[rate], n_items)
    genre_bias = rng.normal(0.0, cfg.item_bias_sd, len(GENRES))
    item_bias = genre_matrix @ genre_bias + rng.normal(0.0, cfg.item_bias_sd, n_items)
    year = rng.integers(cfg.year_range[0], cfg.year_range[1] + 1, n_items)

    # Who rates what: power-law popularity, log-normal activity.
    popularity = 1.0 / np.arange(1, n_items + 1) ** cfg.popularity_exponent
    popularity = popularity[rng.permutation(n_items)]
    activity = rng.lognormal(0.0, 0.7, n_users)
    counts = activity / activity.sum() * cfg.num_ratings
    counts = np.clip(np.round(counts), cfg.min_user_ratings,
                     min(cfg.max_user_ratings, n_items)).astype(np.int64)
    keys = np.log(popularity)[None, :] + rng.gumbel(size=(n_users, n_items))
    ranked = np.argsort(-keys, axis=1)
    user_idx = np.repeat(np.arange(n_users), counts)
    item_idx = ranked[user_idx, _ranks_within(counts)]

    # Ratings.
    affinity = np.einsum("nd,nd->n", user_taste[user_idx], item_profile[item_idx])
    score = (cfg.global_mean + user_bias[user_idx] + item_bias[item_idx]
             + cfg.interaction_scale * np.sqrt(d) * affinity
             + rng.normal(0.0, cfg.noise_sd, len(user_idx)))
    rating = np.clip(np.round(score), 1, 5)

    # Time: a window per user, never before the item's release.
    epoch_2000 = 946_684_800.0
    start = epoch_2000 + rng.uniform(0, 2.5, n_users) * SECONDS_PER_YEAR
    length = rng.uniform(0.05, 1.0, n_users) * SECONDS_PER_YEAR
    release = (year[item_idx] - 1970) * SECONDS_PER_YEAR
    timestamp = np.maximum(start[user_idx] + rng.uniform(0, 1, len(user_idx))
                           * length[user_idx], release).round()

    ratings = pd.DataFrame({"user": user_idx + 1, "item": item_idx + 1, "rating": rating,
                            "timestamp": timestamp}).sort_values(["timestamp", "user"])
    users = pd.DataFrame({"gender": np.array(["F", "M"])[gender],
                          "age": np.array(AGES)[age],
                          "occupation": occupation.astype(str)},
                         index=pd.Index(np.arange(1, n_users + 1), name="user"))
    items = pd.DataFrame({"genres": ["|".join(GENRES[g] for g in sorted(s)) for s in genre_sets],
                          "rate": np.array(RATES)[rate], "year": year},
                         index=pd.Index(np.arange(1, n_items + 1), name="item"))
    return build_dataset(
        "synthetic", ratings, users=users, items=items,
        user_fields={"gender": "categorical", "age": "categorical",
                     "occupation": "categorical"},
        item_fields={"genres": "multi", "rate": "categorical", "year": "numeric"},
    )


def _ranks_within(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(counts.sum()) - starts
