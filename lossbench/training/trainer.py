"""The training and evaluation passes. Per step: no host synchronisation (no
``.item()``, no ``.cpu()``); the epoch's sums stay on the device until its end."""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lossbench.data import DeviceBatches, ImageDataset
from lossbench.training.device import CUDA_GRAPH_MODES, Precision, synchronize
from lossbench.training.metrics import EpochTally, summarize_split

LONG_EPOCH_STEPS = 100


def gradient_columns(norms: np.ndarray) -> dict:
    """Mean, 90th percentile and max of the steps' gradient norms (skipped,
    non-finite steps left out)."""
    finite = norms[np.isfinite(norms)]
    if not len(finite):
        return {"grad_norm_mean": math.nan, "grad_norm_p90": math.nan, "grad_norm_max": math.nan}
    return {"grad_norm_mean": float(finite.mean()), "grad_norm_p90": float(np.quantile(finite, 0.9)),
            "grad_norm_max": float(finite.max())}


@dataclass
class Evaluation:
    row: dict  # the split's columns of the metrics row
    per_class: np.ndarray  # accuracy per class
    reliability: list[dict]  # the calibration bins
    logits: torch.Tensor  # (N, K) float16, on the device


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        data: ImageDataset,
        train_batches: DeviceBatches,
        eval_batches: dict[str, DeviceBatches],  # by split: test, and val where there is one
        optimizer: torch.optim.Optimizer | None,  # None: evaluation only
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        precision: Precision,
        device: torch.device,
        class_groups: list[str] | None,
        progress: bool = True,
        skip_nonfinite: bool = False,
        compile_mode: str | None = None,
        clip_grad_norm: float | None = None,
    ):
        self.model = model
        self.loss_fn = loss_fn
        self.data = data
        self.train_batches = train_batches
        self.eval_batches = eval_batches
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.precision = precision
        self.device = device
        self.class_groups = class_groups
        self.progress = progress
        # A step whose gradients are not finite is skipped by the gradient scaler
        # (without a host sync where the optimizer is fused). fp16 needs it
        # anyway; to only skip, it runs at a fixed scale of 1.
        self.skip_nonfinite = skip_nonfinite
        self.fixed_scale = skip_nonfinite and not precision.needs_grad_scaler
        # The model's state_dict keeps its own keys: what is compiled is the
        # forward function, not the module. Shapes are static (the last, smaller
        # batch of an epoch compiles once more), which lets inductor specialise.
        self.compile_mode = compile_mode
        self.forward = self._forward
        if compile_mode is not None:
            # Compiled code is cached per function, not per Trainer: without a
            # reset, the runs of an in-process sweep would share one cache and
            # run uncompiled once it is full.
            torch.compiler.reset()
            self.forward = torch.compile(self._forward, mode=compile_mode, dynamic=False)
        self.cuda_graphs = compile_mode in CUDA_GRAPH_MODES and device.type == "cuda"
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=precision.needs_grad_scaler or skip_nonfinite, init_scale=1.0 if self.fixed_scale else 2.0**16
        )
        self.clip_grad_norm = clip_grad_norm
        groups = optimizer.param_groups if optimizer is not None else []
        self.parameters = [p for group in groups for p in group["params"] if p.requires_grad]

    def _forward(self, images: torch.Tensor, labels: torch.Tensor):
        """(prediction logits, objective) of a batch, feeding the loss what it takes."""
        outputs = self.model(images)
        if self.loss_fn.inputs == "embeddings":
            return self.loss_fn.logits(outputs), self.loss_fn(outputs, labels)
        if self.loss_fn.inputs == "log_probs":
            return outputs, self.loss_fn(torch.log_softmax(outputs.float(), dim=1), labels)
        return outputs, self.loss_fn(outputs, labels)

    def train_epoch(self, epoch: int, stop=None) -> dict | None:
        """The epoch's training columns, or None if ``stop`` was raised before it ended."""
        self.model.train()
        self.loss_fn.train()
        tally = EpochTally(self.data.num_classes, self.device)
        nonfinite = torch.zeros((), dtype=torch.int64, device=self.device)
        first_nonfinite = torch.full((), -1, dtype=torch.int64, device=self.device)
        grad_norms = torch.full((len(self.train_batches),), math.nan, dtype=torch.float32, device=self.device)
        weights_before = [p.detach().clone() for p in self.parameters]
        lr = self.optimizer.param_groups[0]["lr"]
        synchronize(self.device)
        start = time.perf_counter()
        # A bar per epoch only where an epoch is long enough to watch.
        steps = tqdm(
            self.train_batches, desc=f"epoch {epoch}", unit="step", leave=False, dynamic_ncols=True,
            disable=not self.progress or len(self.train_batches) < LONG_EPOCH_STEPS,
        )
        for step, (images, labels) in enumerate(steps, start=1):
            if stop:
                steps.close()
                return None
            if self.cuda_graphs:
                # a new step: the CUDA graphs may reuse the last step's output memory
                torch.compiler.cudagraph_mark_step_begin()
            with self.precision.autocast(self.device):
                logits, loss = self.forward(images, labels)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.precision.needs_grad_scaler:
                self.scaler.unscale_(self.optimizer)  # the norm of the true gradient
            grads = [p.grad for p in self.parameters if p.grad is not None]
            grad_norm = torch.nn.utils.get_total_norm(grads)
            grad_norms[step - 1] = grad_norm
            if self.clip_grad_norm is not None:
                torch.nn.utils.clip_grads_with_norm_(self.parameters, self.clip_grad_norm, grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update(1.0 if self.fixed_scale else None)
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            bad = ~torch.isfinite(loss.detach())
            first_nonfinite = torch.where((first_nonfinite < 0) & bad, step, first_nonfinite)
            nonfinite += bad
            batch_loss = loss.detach() * labels.shape[0]
            if self.skip_nonfinite:
                batch_loss = torch.where(bad, torch.zeros_like(batch_loss), batch_loss)
            tally.add(logits.detach(), labels, batch_loss)
        sums = tally.read()
        elapsed = time.perf_counter() - start
        n = max(int(sums["seen"].sum()), 1)
        return {
            "lr": lr,
            "train_loss": sums["loss_sum"] / n,
            "train_acc": float(sums["correct"].sum() / n),
            **gradient_columns(grad_norms.cpu().numpy()),
            "update_ratio": self._update_ratio(weights_before),
            "epoch_time_s": elapsed,
            "images_per_s": n / elapsed if elapsed > 0 else float("nan"),
            "nonfinite_steps": int(nonfinite.item()),
            "first_nonfinite_step": int(first_nonfinite.item()),
        }

    @torch.no_grad()
    def _update_ratio(self, weights_before: list[torch.Tensor]) -> float:
        """How far the epoch moved the weights, relative to their size: the
        norm of the change over the norm of the weights it started from."""
        change = torch.nn.utils.get_total_norm([p - w for p, w in zip(self.parameters, weights_before)])
        size = torch.nn.utils.get_total_norm(weights_before)
        return float((change / size).item()) if weights_before else math.nan

    def evaluate_all(self) -> tuple[dict, float]:
        """Every evaluation split's ``Evaluation``, by split, and the seconds they took together."""
        synchronize(self.device)
        start = time.perf_counter()
        evaluated = {split: self.evaluate(split) for split in self.eval_batches}
        synchronize(self.device)
        return evaluated, time.perf_counter() - start

    def evaluate(self, split: str) -> Evaluation:
        """One pass over ``split`` (val or test): its columns of the metrics row,
        and the logits it predicted with (float16, in the split's order)."""
        self.model.eval()
        self.loss_fn.eval()
        tally = EpochTally(self.data.num_classes, self.device)
        logits_seen = []
        # inference mode's tensors cannot enter the compiled training graphs
        # later (as a recompilation after this evaluation would make them)
        with torch.no_grad() if self.compile_mode else torch.inference_mode():
            for images, labels in self.eval_batches[split]:
                if self.cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                with self.precision.autocast(self.device):
                    logits, loss = self.forward(images, labels)
                tally.add(logits.float(), labels, loss * labels.shape[0], calibration=True)
                logits_seen.append(logits.to(torch.float16))
        row, per_class, reliability = summarize_split(split, tally.read(), self.class_groups)
        return Evaluation(row, per_class, reliability, torch.cat(logits_seen))
