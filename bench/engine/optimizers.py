"""Optimisers of the training loops, and the weight posterior IVON leaves behind.

Every gradient-based method trains through :func:`build_optimizer` and
:func:`optimizer_step`, so choosing IVON (``optimizer: ivon``, or a method name
``<method>@ivon``) changes nothing else in a method:

* ``adamw`` / ``sgd``: the usual point-estimate optimisers.
* ``ivon``: Improved Variational Online Newton (Shen et al., 2024) from the PyPI package
  ``ivon-opt`` (a dependency, never vendored: GPL-3.0). It learns a diagonal Gaussian
  posterior ``N(m, 1 / (ess * (h + weight_decay)))`` whose means are the model's own
  parameters. Each step evaluates the loss at ``train_samples`` posterior draws (inside
  ``sampled_params(train=True)``, which records the gradient and the reparameterisation
  noise for the Hessian estimate) and then updates ``m`` and ``h``. Prediction averages
  the softmax over ``eval_samples`` draws (:class:`WeightPosterior`).

IVON keeps one flat state over all of its parameters, so they must share one device and
one dtype (:func:`check_ivon_parameters` says which do not; under bf16 autocast the
parameters stay float32 and only the matmuls run in bf16). Gradient accumulation over
micro-batches happens inside one draw: every micro-batch of a step sees the same sampled
weights, and IVON reads the summed gradient once, when the draw ends.

References:
    Shen et al., "Variational Learning is Effective for Large Deep Networks", ICML 2024.
    Cong et al., "Variational Low-Rank Adaptation Using IVON", 2024 (fine-tuning
    settings: lr 0.03, clip radius 1e-3, beta2 0.99999, no weight decay, 10 test samples).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.errors import ConfigError

#: ``optimizer`` values the loops accept (adapters also take ``sgd``).
OPTIMIZERS = ("adamw", "sgd", "ivon")


@dataclass
class IVONSettings:
    """IVON's own settings (the learning rate and weight decay are the method's).

    Defaults are in ``config/optimizers/ivon.yaml`` too (a test keeps the two equal).

    Attributes:
        ess: Effective sample size ``lambda`` (the likelihood's weight against the
            prior). None: the number of training examples, as IVON's authors set it.
        prior_precision: ``ess * hess_init``: the initial posterior precision per weight,
            so the first draws have standard deviation ``prior_precision ** -0.5``
            (0.002) whatever the training-set size; ``hess_init = prior_precision /
            ess``. IVON-LoRA's settings (ess 1e7, hess_init 3e-4) give 3000 (std 0.018),
            too much noise on every weight of a pretrained encoder (measured).
        beta1: Momentum of the gradient.
        beta2: Momentum of the Hessian estimate.
        clip_radius: Element-wise clip of the preconditioned update; at this default
            most coordinates move by ``lr * clip_radius`` per step, IVON-LoRA's regime.
        rescale_lr: Multiply the learning rate by ``hess_init + weight_decay`` (the
            library's default; IVON-LoRA turns it off).
        train_samples: Posterior draws per optimiser step (their gradients averaged).
        eval_samples: Posterior draws averaged at prediction (``S``).
    """

    ess: float | None = None
    prior_precision: float = 250000.0
    beta1: float = 0.9
    beta2: float = 0.99999
    clip_radius: float = 1e-6
    rescale_lr: bool = False
    train_samples: int = 1
    eval_samples: int = 10

    def __post_init__(self) -> None:
        if self.ess is not None and self.ess <= 0:
            raise ValueError(f"ivon ess must be positive or null, got {self.ess}")
        for name in ("prior_precision", "clip_radius"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ivon {name} must be positive, got {getattr(self, name)}")
        for name in ("train_samples", "eval_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"ivon {name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict | None) -> IVONSettings:
        """From a cell's ``ivon`` hyperparameter block (None: the defaults).

        Raises:
            ConfigError: An unknown key, naming the valid ones.
        """
        values = dict(values or {})
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ConfigError(f"unknown IVON setting(s) {unknown}; valid: {sorted(valid)}")
        return cls(**values)

    def effective_sample_size(self, n_train: int) -> float:
        """``ess``, or the training-set size when it is None."""
        return float(self.ess) if self.ess is not None else float(max(1, n_train))


def check_ivon_parameters(params: Sequence[torch.nn.Parameter]) -> None:
    """IVON's flat state needs one device and one dtype over its parameters.

    Raises:
        ConfigError: Naming the devices or dtypes found and the fix.
    """
    if not params:
        raise ConfigError("IVON got no trainable parameters")
    devices = sorted({str(p.device) for p in params})
    dtypes = sorted({str(p.dtype) for p in params})
    if len(devices) > 1:
        raise ConfigError(
            f"IVON needs all trained parameters on one device, found {devices}; move the "
            "model to one device before training"
        )
    if len(dtypes) > 1 or dtypes[0] not in ("torch.float32", "torch.float64"):
        raise ConfigError(
            f"IVON needs float32 parameters of one dtype, found {dtypes}; keep the weights "
            "in float32 and use runtime.precision bf16 (autocast) for speed"
        )


def _make_ivon(groups: list[dict], lr: float, settings: IVONSettings, n_train: int, weight_decay):
    """The ``ivon-opt`` optimiser, with its step counter added to its checkpoints."""
    import ivon

    class CheckpointedIVON(ivon.IVON):
        # The library keeps the step count (used to debias the momentum) outside
        # state_dict; a resumed run would restart it at 0.
        def state_dict(self):
            state = super().state_dict()
            state["ivon_current_step"] = self.current_step
            return state

        def load_state_dict(self, state):
            state = dict(state)
            self.current_step = state.pop("ivon_current_step", 0)
            super().load_state_dict(state)

    ess = settings.effective_sample_size(n_train)
    return CheckpointedIVON(
        groups,
        lr=lr,
        ess=ess,
        hess_init=settings.prior_precision / ess,
        beta1=settings.beta1,
        beta2=settings.beta2,
        weight_decay=weight_decay,
        mc_samples=settings.train_samples,
        clip_radius=settings.clip_radius,
        rescale_lr=settings.rescale_lr,
    )


def build_optimizer(
    groups: list[dict],
    name: str,
    *,
    lr: float,
    weight_decay: float,
    n_train: int,
    ivon_settings: IVONSettings | None = None,
    fused: bool = False,
    momentum: float = 0.9,
    adam_eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over parameter ``groups`` (each may set its own ``lr``).

    Args:
        groups: ``[{"params": [...], "lr": ..., "weight_decay": ...}, ...]``.
        name: ``adamw``, ``sgd`` or ``ivon``.
        lr: Default learning rate of groups without one.
        weight_decay: Default weight decay of groups without one.
        n_train: Training examples (IVON's default ``ess``).
        ivon_settings: IVON's settings (None: the defaults).
        fused: AdamW's fused CUDA kernel.
        momentum: SGD momentum.
        adam_eps: AdamW's epsilon.

    Raises:
        ConfigError: An unknown name, or IVON parameters on mixed devices or dtypes.
    """
    if name == "adamw":
        return torch.optim.AdamW(
            groups, lr=lr, weight_decay=weight_decay, eps=adam_eps, fused=fused or None
        )
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "ivon":
        check_ivon_parameters([p for g in groups for p in g["params"]])
        return _make_ivon(groups, lr, ivon_settings or IVONSettings(), n_train, weight_decay)
    raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def is_ivon(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` samples weights (IVON)."""
    return hasattr(optimizer, "sampled_params")


def _fill_missing_grads(params: Iterable[torch.nn.Parameter]) -> None:
    # IVON flattens every parameter's .grad when a draw ends; one that the loss did not
    # reach (an unused head bias) has none, and a zero gradient is what it means.
    for param in params:
        if param.requires_grad and param.grad is None:
            param.grad = torch.zeros_like(param)


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    micro_losses: Callable[[], Iterator[torch.Tensor]],
    clip_params: Sequence[torch.nn.Parameter] = (),
    grad_clip: float = 0.0,
) -> torch.Tensor:
    """One optimiser step over a batch given as micro-batch losses.

    ``micro_losses()`` yields each micro-batch's loss already weighted by its share of
    the batch (a single loss without accumulation); each is backpropagated as it comes,
    so only one micro-batch's activations live at a time. IVON calls it once per
    training draw, inside the draw.

    Returns:
        The batch loss (detached; averaged over IVON's draws), on the device.
    """
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def accumulate() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total = None
        for loss in micro_losses():
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(clip_params or params, grad_clip)
        return total

    if not is_ivon(optimizer):
        total = accumulate()
        optimizer.step()
        return total
    draws = []
    for _ in range(optimizer.mc_samples):
        with optimizer.sampled_params(train=True):
            draws.append(accumulate())
            _fill_missing_grads(params)
    optimizer.step()
    return torch.stack(draws).mean()


def monte_carlo_logprobs(
    draw: Callable[[int], contextlib.AbstractContextManager],
    samples: int,
    fn: Callable[[], dict[str, torch.Tensor]],
) -> dict[str, np.ndarray]:
    """``{split: log-probabilities [S, N, C]}`` of ``fn()`` inside ``samples`` draws.

    Every sampling predictor (IVON's posterior, MC dropout's masks, SWAG's weights)
    predicts this way: ``draw(i)`` puts the model in its ``i``-th stochastic state for
    the ``with`` block, and ``fn`` returns ``{split: logits [N, C]}`` in that state.
    """
    draws: dict[str, list[torch.Tensor]] = {}
    for index in range(samples):
        with draw(index):
            for name, logits in fn().items():
                logprobs = torch.log_softmax(torch.as_tensor(logits).detach().float(), dim=-1)
                draws.setdefault(name, []).append(logprobs.cpu())
    return {k: torch.stack(v).numpy() for k, v in draws.items()}


def _as_array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


class WeightPosterior:
    """The weights a trained model predicts with: its point estimate, or IVON's draws.

    A method hands one to its training loop (which :meth:`bind` s the optimiser) and
    predicts through :meth:`predict`, so the same code serves AdamW and IVON.

    Args:
        eval_samples: Draws averaged at prediction when the optimiser is IVON.
    """

    def __init__(self, eval_samples: int = 10):
        self.eval_samples = eval_samples
        self.optimizer: torch.optim.Optimizer | None = None

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer if is_ivon(optimizer) else None

    @property
    def samples(self) -> bool:
        """Whether predictions are Monte Carlo draws."""
        return self.optimizer is not None

    def predict(self, fn: Callable[[], dict[str, torch.Tensor]]) -> tuple[dict, str]:
        """``fn()`` at the point estimate, or its log-softmax at ``eval_samples`` draws.

        Args:
            fn: Returns ``{split: logits [N, C]}`` (arrays or tensors) for the current
                weights; with IVON it runs once per draw, so everything that depends on
                the weights (a text tower's class head too) is recomputed in each.

        Returns:
            ``({split: logits [N, C]}, "logits")`` without a posterior, else
            ``({split: log-probabilities [S, N, C]}, "logprobs")``, as float32 arrays.
        """
        if not self.samples:
            return {k: _as_array(v) for k, v in fn().items()}, "logits"
        draw = lambda _: self.optimizer.sampled_params(train=False)  # noqa: E731
        return monte_carlo_logprobs(draw, self.eval_samples, fn), "logprobs"

    def describe(self) -> dict:
        """Facts for run.json: the posterior's mean standard deviation and Hessian."""
        if not self.samples:
            return {}
        groups = self.optimizer.param_groups
        hess = torch.cat([g["hess"].flatten() for g in groups])
        std = torch.cat(
            [(1.0 / (g["ess"] * (g["hess"] + g["weight_decay"]))).sqrt() for g in groups]
        )
        ess = [g["ess"] for g in groups]
        return {
            "ivon_ess": float(ess[0]),
            "ivon_mean_posterior_std": float(std.mean()),
            "ivon_mean_hessian": float(hess.mean()),
            "ivon_eval_samples": self.eval_samples,
        }
