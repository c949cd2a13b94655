"""Plain (non-meta) training on every known rating, optionally fine-tuned per user."""

from __future__ import annotations

import numpy as np
import torch

from metarec.learners.base import HasFeatures, Learner
from metarec.learners.inner_loop import masked_loss
from metarec.tasks.taskset import TaskSet


class Pretrain(Learner):
    """Ordinary training: minibatches of (user, item, rating) pairs from the support and
    query sets of the training tasks, ``config.loss`` (MSE by default), Adam with
    ``meta_lr``. At test time it adapts (fine-tunes every parameter) on the user's support
    set for ``inner_steps`` steps of squared error with ``inner_lr``, the essential
    control for meta-learning; ``inner_steps = 0`` is the no-adaptation baseline."""

    name = "pretrain"
    scope = "all"

    def fit_epoch(self, train: TaskSet, features: HasFeatures, epoch: int) -> float:
        if not hasattr(self, "optimizer_"):
            self.optimizer_ = torch.optim.Adam(self.model.parameters(), lr=self.config.meta_lr,
                                               weight_decay=self.config.weight_decay)
        ratings = self.known_ if self.known_ is not None else train.all_ratings()
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(ratings))
        losses = []
        for start in range(0, len(order), self.config.batch_size):
            rows = order[start:start + self.config.batch_size]
            users = features.users.take(torch.from_numpy(ratings.user[rows]), self.device)
            items = self.training_items(
                features.items.take(torch.from_numpy(ratings.item[rows]), self.device),
                features, (epoch, start))
            target = torch.from_numpy(ratings.rating[rows]).to(self.device, self.dtype)
            pred = self.model(users, items)
            loss = masked_loss(pred, target, torch.ones_like(target, dtype=torch.bool),
                               self.config.loss)
            self.optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer_.step()
            self.update_average()
            losses.append(float(loss.detach()))
        return float(np.mean(losses)) if losses else float("nan")
