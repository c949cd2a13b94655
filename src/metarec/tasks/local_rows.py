"""Per-task row subsets of embedding tables, so adapting a task touches only its rows.

A learner that adapts embedding tables per task (MAML, FOMAML, Reptile) would otherwise
carry a whole copy of every table per task through every inner step, although a task's
gradient reaches only the rows its codes select. :func:`localise` gives each task the
sorted distinct codes it uses (row 0, the padding row, always first) and rewrites the
batch's codes as positions in that list. Gathering ``table[rows]`` then gives a small
per-task table that behaves exactly like the full one for that task: same values, same
gradients on the rows used, and no gradient anywhere else (the rows not in the list would
not have changed either).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from metarec.tasks.batch import TaskBatch


def localise(batch: TaskBatch, tables: dict[str, tuple[str, str]]
             ) -> tuple[TaskBatch, dict[str, torch.Tensor]]:
    """``batch`` with the codes of every table's field replaced by positions in that
    task's row list, and the row lists ``{name: [B, U] long}`` (row 0 first; lists
    shorter than ``U`` are padded with 0). ``tables`` maps a parameter name to the
    (side, field) whose codes index it (``RatingModel.embedding_tables``). User-side
    tables take the codes of the task's user, item-side tables those of its support and
    query items."""
    if not tables:
        return batch, {}
    fields = {"user": dict(batch.user_fields), "support": dict(batch.support_fields),
              "query": dict(batch.query_fields)}
    size = len(batch)
    rows: dict[str, torch.Tensor] = {}
    for name, (side, field) in tables.items():
        parts = ["user"] if side == "user" else ["support", "query"]
        codes = [fields[part][field] for part in parts]
        device = codes[0].device
        flat = torch.cat([torch.zeros(size, 1, dtype=torch.long, device=device),
                          *(c.reshape(size, -1) for c in codes)], dim=1)
        ordered, order = flat.sort(dim=1)
        first = torch.ones_like(ordered, dtype=torch.bool)
        first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        position = first.long().cumsum(1) - 1
        table_rows = torch.zeros(size, int(position.max()) + 1, dtype=torch.long,
                                 device=device)
        table_rows.scatter_(1, position, ordered)
        local = torch.empty_like(flat).scatter_(1, order, position)[:, 1:]
        widths = [c.reshape(size, -1).shape[1] for c in codes]
        for part, original, chunk in zip(parts, codes, local.split(widths, dim=1),
                                         strict=True):
            fields[part][field] = chunk.reshape(original.shape)
        rows[name] = table_rows
    return replace(batch, user_fields=fields["user"], support_fields=fields["support"],
                   query_fields=fields["query"]), rows


def gather(params: dict[str, torch.Tensor], rows: dict[str, torch.Tensor]
           ) -> dict[str, torch.Tensor]:
    """Per-task tables ``{name: params[name][rows[name]]}`` (``[B, U, dim]``)."""
    return {name: params[name][index] for name, index in rows.items()}


def scatter(tables: dict[str, torch.Tensor], local: dict[str, torch.Tensor],
            rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Full per-task tables ``[B, V, dim]``: ``tables`` with each task's rows replaced by
    its ``local`` values (the inverse of :func:`gather` on the rows a task holds)."""
    out = {}
    for name, index in rows.items():
        table = tables[name].detach()
        full = table.expand(index.shape[0], *table.shape).clone()
        full.scatter_(1, index.unsqueeze(-1).expand(-1, -1, table.shape[-1]), local[name])
        out[name] = full
    return out


def scatter_mean(tables: dict[str, torch.Tensor], local: dict[str, torch.Tensor],
                 rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{name: sum over tasks of local[name] placed at the task's rows, / B}`` as full
    ``[V, dim]`` tensors: the mean over tasks of a per-task quantity that is zero on rows a
    task does not hold (each task lists a row at most once, padding aside, whose values
    must be zero)."""
    out = {}
    for name, index in rows.items():
        values = local[name]
        total = torch.zeros_like(tables[name])
        total.index_add_(0, index.reshape(-1), values.reshape(-1, values.shape[-1]))
        out[name] = total / index.shape[0]
    return out
