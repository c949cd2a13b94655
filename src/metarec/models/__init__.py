"""Models: ``nn.Module``s mapping (user fields, item fields) to ratings. Each names its
head (decision layers, adapted per user) and body (embeddings) parameters."""

from metarec.models.base import RatingModel, build_model, model_from_config
from metarec.models.biased_mf import BiasedMF
from metarec.models.feature_mf import FeatureMF
from metarec.models.feature_mlp import FeatureMLP

__all__ = ["BiasedMF", "FeatureMF", "FeatureMLP", "RatingModel", "build_model",
           "model_from_config"]
