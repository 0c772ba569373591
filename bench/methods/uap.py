"""Fine-tuning with uncertainty-aware priors (UAP): ``uap_map`` and the variational ``uap``.

The prior puts high density on parameters whose predictions are *uncertain* on
context inputs unlike the training data. Per mini-batch of ``B`` training examples
(``N`` in the training split) and a fresh batch ``X_c`` of ``M`` context points, the
MAP form minimises::

    L(theta) = (1/B) sum_i CE(f(x_i; theta), y_i)
             + (lambda/N) [ -sum_k log N(f_k(X_c; theta) | 0, K_c)
                            + ||theta - theta_0||^2 / (2 sigma_p^2) ]
    K_c = s Phi(X_c) Phi(X_c)^T + s 1 1^T + d I

``f_k(X_c)`` is the k-th class logit over the context batch; the zero-mean Gaussian
pulls context logits toward equal values (a uniform softmax) along directions the
pretrained features ``Phi`` (the frozen *pretrained* encoder's pooled features, no
gradient) do not explain. ``K_c`` is factorised in float32 by Cholesky, with growing
jitter if it is not numerically positive definite (:func:`stable_cholesky`).

The variational form ``uap`` puts a mean-field Gaussian ``q`` over the trained
parameters (the head by default, or every trained parameter) and minimises the
negative ELBO under the same prior, tempered by ``lambda``::

    E_q[(1/B) sum_i CE] + (lambda/N) ( E_q[-sum_k log N(f_k(X_c; theta) | 0, K_c)]
                                        + KL(q || N(theta_0, sigma_p^2 I)) )

with ``train_samples`` reparameterised draws per step and predictions that keep
``eval_samples`` draws (kind ``logprobs [S, N, C]``, so the scorer averages their
softmax and can use mutual information). Parameters outside ``q`` are point estimates
with the MAP form's parameter-space term.

Choices where the description leaves one open (``../shared/METHODS.md`` §1), checked
against the FS-EB code (the UAP repository was not reachable):

* The objective's scaling is FS-EB's: its loss is ``(sum_batch CE + lambda R / n_batches)
  / B``, i.e. mean cross-entropy plus ``lambda R / N``; the log-density is the full
  multivariate-normal one (constants included, summed over classes, one ``K`` for all
  classes); ``Phi`` are the pooled penultimate features under the prior-mean (pretrained)
  weights, stop-gradient, recomputed every step; its fine-tuning config regularises the
  context points only (``reg_points: context``), as here.
* ``prior_center: pretrained`` (default, METHODS.md) centres the encoder's prior at its
  pretrained weights ``theta_0``; ``zero`` reproduces the FS-EB code, whose parameter
  term squares the parameters themselves. The new head has no pretrained value and is
  always centred at 0 (as L2-SP does), and so are LoRA adapters (zero adapters = the
  pretrained encoder).
* ``trained_params``: ``all`` (encoder and head, as FS-EB), ``lora`` (adapters on the
  encoder's linear layers plus the head; :mod:`bench.engine.lora`) or ``head`` (frozen
  encoder).
* ``context_source``: ``auto`` uses the task's own context set where it has one (the
  CLINC150 Wikipedia sentences of the NLP tasks) and strong augmentations of the
  training inputs otherwise; ``task`` and ``augment`` force one of the two; any other
  value names a registered task whose training inputs are the pool (vision: FS-EB's
  fine-tuning config draws ImageNet images with a random-resized crop). The
  augmentations are this suite's crop-and-jigsaw / word salad
  (:mod:`bench.engine.context`); FS-EB's "augmented train set" instead blurs, solarises
  and colour-jitters the training images.
* The variational form is this suite's: every released FS-EB config is the MAP
  (``psmap``, log-variances initialised at -50), its density path has no KL, and the
  UAP paper's variational family was not reachable. Here the KL of the mean-field
  ``q`` to the Gaussian parameter prior is added, which makes the objective a tempered
  ELBO.
* The optimiser is the suite's AdamW schedule of ``full_ft`` (same learning rates,
  weight decay, clipping), so ``uap_map`` with ``lambda = 0`` *is* ``full_ft`` and the
  comparison isolates the prior; FS-EB trains with SGD (lr 5e-3, momentum 0.9, cosine to
  0.05 lr, 50 epochs, batch 128, no weight decay).
* With ``lambda / N`` the prior weighs more the smaller the training set: FS-EB's
  ResNet-50 run has N = 50,000; the default grid's CPU caps (600-900 examples) make the
  same ``lambda`` about 60 times stronger per step.

References:
    Rudner, Pan, Li, Shwartz-Ziv, Wilson, "Fine-Tuning with Uncertainty-Aware Priors
    Makes Vision and Language Foundation Models More Reliable", AISTATS 2025;
    https://github.com/timrudner/uncertainty-aware-priors.
    Rudner et al., "Function-Space Regularization in Neural Networks: A Probabilistic
    Perspective", ICML 2023; https://github.com/timrudner/function-space-empirical-bayes
    (``trainer.py``, ``calculate_empirical_gaussian_prior_density`` and
    ``calculate_loss``; ``configs/fseb-resnet50-pretrained-cifar10.json``: lambda 1,
    sigma_p^2 1, s 1e-5, d 1e-2, context batch 32, ImageNet context).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from bench.backbones.base import to_device
from bench.engine.context import ContextSampler
from bench.engine.loop import Classifier, OptimConfig, encode_split, train_classifier
from bench.engine.lora import add_lora
from bench.engine.posterior import MeanFieldGaussian
from bench.errors import KernelError
from bench.io import SplitPrediction
from bench.methods.base import FitContext, Method
from bench.methods.full_ft import predict_all_splits

PRIOR_CENTERS = ("pretrained", "zero")
TRAINED_PARAMS = ("all", "lora", "head")
STOCHASTIC_PARAMS = ("head", "trained")
#: Cholesky attempts: the jitter starts at 1e-6 of K's mean diagonal and grows 10x.
CHOLESKY_TRIES = 6


@dataclass
class UAPMapHparams(OptimConfig):
    """Hyperparameters of ``uap_map``: ``full_ft``'s optimiser plus the prior's.

    Attributes:
        prior_weight: ``lambda``, the weight of the prior terms (0 = full fine-tuning).
        prior_var: ``sigma_p^2`` of the parameter-space term.
        prior_center: ``pretrained`` or ``zero`` (see module docstring).
        kernel_scale: ``s`` of ``K_c``.
        kernel_jitter: ``d`` of ``K_c``, the variance no feature explains.
        context_source: ``auto``, ``task``, ``augment`` or a registered task's name.
        context_batch_size: ``M``, context points per step.
        trained_params: ``all``, ``lora`` or ``head``.
        lora_rank: Rank of the adapters (``trained_params: lora``).
        lora_alpha: Adapter scale numerator (update scaled by ``alpha / rank``).
    """

    prior_weight: float = 1.0
    prior_var: float = 1.0
    prior_center: str = "pretrained"
    kernel_scale: float = 1e-5
    kernel_jitter: float = 1e-2
    context_source: str = "auto"
    context_batch_size: int = 32
    trained_params: str = "all"
    lora_rank: int = 8
    lora_alpha: float = 16.0


@dataclass
class UAPHparams(UAPMapHparams):
    """``uap_map``'s hyperparameters plus the variational family's.

    Attributes:
        stochastic_params: ``head`` (a Gaussian over the head only; the encoder is a
            point estimate) or ``trained`` (over every trained parameter).
        init_std: Initial posterior standard deviation of every stochastic weight.
        posterior_lr: Learning rate of the posterior scales' ``rho`` (the means use the
            usual rates: encoder rates would leave the scales where they started).
        train_samples: Monte Carlo draws per training step.
        eval_samples: Draws kept per prediction.
    """

    stochastic_params: str = "head"
    init_std: float = 1e-3
    posterior_lr: float = 1e-2
    train_samples: int = 1
    eval_samples: int = 10


def context_kernel(features: torch.Tensor, scale: float, jitter: float) -> torch.Tensor:
    """``K_c = s Phi Phi^T + s 1 1^T + d I`` in float32 from features ``[M, D]``."""
    phi = features.float()
    m = phi.shape[0]
    ones = torch.ones(m, m, device=phi.device)
    eye = torch.eye(m, device=phi.device)
    return scale * (phi @ phi.T) + scale * ones + jitter * eye


def stable_cholesky(kernel: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Lower Cholesky factor of ``kernel``, adding diagonal jitter only if needed.

    Returns:
        ``(L, added)``: the factor and the jitter added to the diagonal (0 normally).

    Raises:
        KernelError: Non-finite entries, or no factorisation after
            :data:`CHOLESKY_TRIES` jitter levels; names the likely cause and the fix.
    """
    if not torch.isfinite(kernel).all():
        raise KernelError(
            "the context kernel K_c has non-finite entries: the pretrained encoder's "
            "features of the context batch are nan or inf; check the context inputs"
        )
    factor, info = torch.linalg.cholesky_ex(kernel)
    if int(info) == 0:
        return factor, 0.0
    base = 1e-6 * float(kernel.diagonal().mean().abs().clamp_min(1e-12))
    eye = torch.eye(kernel.shape[0], device=kernel.device, dtype=kernel.dtype)
    for attempt in range(CHOLESKY_TRIES):
        added = base * 10**attempt
        factor, info = torch.linalg.cholesky_ex(kernel + added * eye)
        if int(info) == 0:
            return factor, added
    raise KernelError(
        f"the context kernel K_c ({kernel.shape[0]}x{kernel.shape[0]}) is not positive "
        f"definite even with {added:.2e} added to its diagonal; raise kernel_jitter (d) or "
        "lower kernel_scale (s) for this method"
    )


def function_space_nll(context_logits: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """``-sum_k log N(f_k | 0, K)`` for logits ``[M, C]`` and ``K = L L^T``.

    Each class's column of logits over the ``M`` context points is one draw of the
    zero-mean Gaussian process prior; the constants are included.
    """
    logits = context_logits.float()
    m, classes = logits.shape
    whitened = torch.linalg.solve_triangular(chol, logits, upper=False)  # L^-1 F
    quadratic = 0.5 * whitened.pow(2).sum()
    log_det = classes * torch.log(chol.diagonal()).sum()  # C * 0.5 log|K|
    return quadratic + log_det + 0.5 * classes * m * math.log(2 * math.pi)


def covers_only_head(posterior: MeanFieldGaussian) -> bool:
    """Whether the posterior is over the linear head alone.

    Then the encoder runs once per batch and only the head is sampled, in training and
    in prediction.
    """
    return all(name.startswith("head.") for name in posterior.names)


class _FrozenEncoderClassifier(Classifier):
    """A classifier whose encoder stays in eval mode (``trained_params: head``)."""

    def train(self, mode: bool = True) -> _FrozenEncoderClassifier:
        super().train(mode)
        self.backbone.eval()
        return self


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raises ValueError naming the valid choices when ``value`` is not one."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


class UAPObjective:
    """The per-step loss of ``uap_map`` / ``uap`` (see module docstring).

    Args:
        hparams: The method's hyperparameters.
        n_train: ``N``, the training split's size.
        pretrained: The frozen pretrained encoder (features ``Phi``).
        centers: ``{parameter name in the model: prior centre or None (zero)}`` of every
            trained parameter.
        sampler: Context batches; None drops the function-space term (``prior_weight``
            0, or L2-SP).
        engine: Device and precision.
        posterior: The variational posterior (``uap``) or None (``uap_map``).
    """

    def __init__(
        self,
        hparams: UAPMapHparams,
        n_train: int,
        pretrained: nn.Module,
        centers: dict[str, torch.Tensor | None],
        sampler: ContextSampler | None,
        engine,
        posterior: MeanFieldGaussian | None = None,
    ):
        self.hp = hparams
        self.n_train = n_train
        self.pretrained = pretrained
        self.sampler = sampler
        self.engine = engine
        self.posterior = posterior
        stochastic = set(posterior.names) if posterior is not None else set()
        self.point_centers = {n: c for n, c in centers.items() if n not in stochastic}
        self.posterior_centers = [centers[n] for n in posterior.names] if posterior else []
        self.head_only = posterior is not None and covers_only_head(posterior)
        self.sums = {"ce": 0.0, "function_space": 0.0, "parameter_space": 0.0, "steps": 0}
        self.jitter_added = 0

    def _forward(self, model: Classifier, batch, draws: list[dict] | None) -> list[torch.Tensor]:
        """Logits of ``batch``, one tensor per posterior draw (one when MAP)."""
        with self.engine.autocast():
            if draws is None:
                return [model(batch)]
            if self.head_only:
                features = model.backbone(batch)
                return [
                    nn.functional.linear(features, d["head.weight"], d["head.bias"]) for d in draws
                ]
            return [functional_call(model, d, (batch,)) for d in draws]

    def parameter_space(self, model: Classifier) -> torch.Tensor:
        """``sum ||theta - centre||^2 / (2 sigma_p^2)`` over point estimates, plus the KL."""
        params = dict(model.named_parameters())
        total = torch.zeros((), device=self.engine.device)
        for name, center in self.point_centers.items():
            param = params[name]
            offset = param if center is None else param - center
            total = total + offset.float().pow(2).sum() / (2 * self.hp.prior_var)
        if self.posterior is not None:
            total = total + self.posterior.kl_to_gaussian(self.posterior_centers, self.hp.prior_var)
        return total

    def __call__(self, model: Classifier, batch, labels: torch.Tensor) -> torch.Tensor:
        draws = None
        if self.posterior is not None:
            draws = [self.posterior.sample() for _ in range(self.hp.train_samples)]
        logits = self._forward(model, batch, draws)
        ce = torch.stack(
            [
                nn.functional.cross_entropy(
                    x.float(), labels, label_smoothing=self.hp.label_smoothing
                )
                for x in logits
            ]
        ).mean()
        self.sums["steps"] += 1
        self.sums["ce"] += ce.detach()
        if self.hp.prior_weight == 0:
            return ce
        scale = self.hp.prior_weight / self.n_train
        parameter_space = self.parameter_space(model)
        self.sums["parameter_space"] += parameter_space.detach()
        if self.sampler is None:
            return ce + scale * parameter_space
        raw = self.sampler.draw()
        context = to_device(model.backbone.prepare(raw, train=False), self.engine.device)
        with torch.no_grad(), self.engine.autocast():
            phi = self.pretrained(context)
        chol, added = stable_cholesky(
            context_kernel(phi, self.hp.kernel_scale, self.hp.kernel_jitter)
        )
        self.jitter_added += added > 0
        context_logits = self._forward(model, context, draws)
        function_space = torch.stack([function_space_nll(x, chol) for x in context_logits]).mean()
        self.sums["function_space"] += function_space.detach()
        return ce + scale * (function_space + parameter_space)

    def summary(self) -> dict:
        """Mean of each term over the run's steps, for run.json."""
        steps = max(1, self.sums["steps"])
        out = {f"mean_{k}": float(v) / steps for k, v in self.sums.items() if k != "steps"}
        out["cholesky_jitter_steps"] = int(self.jitter_added)
        return out

    def state_dict(self) -> dict:
        return {"sums": {k: float(v) for k, v in self.sums.items()}, "jitter": self.jitter_added}

    def load_state_dict(self, state: dict) -> None:
        self.sums = dict(state["sums"])
        self.sums["steps"] = int(self.sums["steps"])
        self.jitter_added = int(state["jitter"])


def context_sampler(
    hparams: UAPMapHparams, ctx: FitContext, backbone, seed: int
) -> tuple[ContextSampler, str]:
    """The sampler ``context_source`` names, and a line describing it for run.json.

    Raises:
        ValueError: ``task`` for a task without a context set, or a pool task of the
            other modality (the workflow checks both before any job runs).
    """
    task = ctx.task()
    source = hparams.context_source
    if source == "auto":
        source = "task" if task.context is not None else "augment"
    vision = task.modality == "vision"
    if source == "task":
        if task.context is None:
            raise ValueError(
                f"context_source 'task': task {ctx.task_name} has no context set; use "
                "'augment' or name another task"
            )
        inputs, mode, transform = task.context, "pool", None
        if vision and hasattr(inputs, "subset"):
            transform = backbone.image_transform(True)
        described = f"task context of {ctx.task_name}"
    elif source == "augment":
        inputs, mode = task.splits["train"].inputs, "augment"
        transform = backbone.image_transform(False) if vision else None
        described = f"strong augmentations of {ctx.task_name} train"
    else:
        other = ctx.build_task(source)
        if other.modality != task.modality:
            raise ValueError(
                f"context_source {source!r} is a {other.modality} task but "
                f"{ctx.task_name} is {task.modality}"
            )
        inputs, mode = other.splits["train"].inputs, "pool"
        transform = backbone.image_transform(True) if vision else None
        described = f"{source} train"
    sampler = ContextSampler(inputs, mode, hparams.context_batch_size, seed, transform)
    return sampler, f"{described}: {sampler.describe()}"


class UAPMap(Method):
    """UAP's deterministic (MAP) form."""

    Hparams = UAPMapHparams
    #: Whether the objective has the context-point term (L2-SP turns it off).
    function_space = True

    def __init__(self, **hparams):
        super().__init__(**hparams)
        hp = self.hparams
        check_choice("prior_center", hp.prior_center, PRIOR_CENTERS)
        if hp.prior_weight < 0 or hp.prior_var <= 0:
            raise ValueError(
                f"need prior_weight >= 0 and prior_var > 0; got {hp.prior_weight}, {hp.prior_var}"
            )
        if self.function_space:
            check_choice("trained_params", hp.trained_params, TRAINED_PARAMS)
            if hp.kernel_scale < 0 or hp.kernel_jitter <= 0:
                raise ValueError(
                    "need kernel_scale >= 0 and kernel_jitter > 0; got "
                    f"{hp.kernel_scale}, {hp.kernel_jitter}"
                )

    def build_model(self, ctx: FitContext) -> tuple[Classifier, nn.Module, dict]:
        """The classifier to train, the frozen pretrained encoder, the prior centres.

        Only the parameters the encoder's forward pass uses are trained (a CLIP image
        classifier leaves the text tower frozen).
        """
        hp = self.hparams
        task = ctx.task()
        backbone = ctx.backbone()
        if hp.trained_params == "head":
            model = _FrozenEncoderClassifier(backbone, task.num_classes)
            for param in backbone.parameters():
                param.requires_grad_(False)
            pretrained = backbone  # frozen: the model's own encoder is the pretrained one
        else:
            pretrained = copy.deepcopy(backbone)
            model = Classifier(backbone, task.num_classes)
            if hp.trained_params == "lora":
                adapted = add_lora(backbone, hp.lora_rank, hp.lora_alpha)
                self._summary = {**getattr(self, "_summary", {}), "lora_layers": len(adapted)}
            # Parameters the classifier's forward pass never reaches (a CLIP model's text
            # tower) would only collect prior terms: leave them out.
            used = {id(p) for p in backbone.classifier_parameters()}
            for param in backbone.parameters():
                param.requires_grad_(param.requires_grad and id(param) in used)
        pretrained.eval()
        for param in pretrained.parameters():
            param.requires_grad_(False)
        model.to(ctx.engine.device)
        pretrained.to(ctx.engine.device)
        reference = dict(pretrained.named_parameters())
        centers: dict[str, torch.Tensor | None] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            inner = name.removeprefix("backbone.")
            pretrained_center = (
                hp.prior_center == "pretrained"
                and name.startswith("backbone.")
                and hp.trained_params == "all"
            )
            centers[name] = reference[inner] if pretrained_center else None
        return model, pretrained, centers

    def build_posterior(self, model: Classifier, ctx: FitContext) -> MeanFieldGaussian | None:
        """None: the MAP form has no posterior."""
        return None

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        hp = self.hparams
        task = ctx.task()
        model, pretrained, centers = self.build_model(ctx)
        posterior = self.build_posterior(model, ctx)
        # The MAP forms (uap_map, l2_sp) take IVON like any gradient method; UAP's own
        # variational posterior is trained by AdamW on its means and scales.
        ivon, weights = self.weight_posterior() if posterior is None else (None, None)
        sampler, described = None, "none (prior_weight 0)"
        if not self.function_space:
            described = "none (no function-space term)"
        elif hp.prior_weight > 0:
            sampler, described = context_sampler(hp, ctx, model.backbone, ctx.seed)
        objective = UAPObjective(
            hp, len(task.splits["train"]), pretrained, centers, sampler, ctx.engine, posterior
        )
        extra_state = {"objective": objective}
        extra_groups = []
        if sampler is not None:
            extra_state["context"] = sampler
        if posterior is not None:
            extra_state["posterior"] = posterior
            extra_groups = [
                {"params": list(posterior.rho), "lr": hp.posterior_lr, "weight_decay": 0.0}
            ]
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        ctx.engine.log(f"{type(self).__name__}: {trained} trained parameters; context: {described}")
        fit = train_classifier(
            model,
            task.splits["train"],
            hp,
            ctx.engine,
            ctx.seed,
            checkpoint=ctx.checkpoint,
            extra_state=extra_state,
            objective=objective,
            extra_param_groups=extra_groups,
            ivon=ivon,
            posterior=weights,
        )
        self._summary = {
            **getattr(self, "_summary", {}),
            **fit,
            **(weights.describe() if weights is not None else {}),
            **objective.summary(),
            "context": described,
            "trained_parameters": trained,
        }
        if posterior is not None:
            self._summary["stochastic_parameters"] = posterior.numel()
            self._summary["posterior_mean_std"] = posterior.mean_std()
        with torch.no_grad():
            if posterior is None:
                return predict_all_splits(model, ctx, weights)
            return predict_sampled(model, posterior, ctx, hp.eval_samples, ctx.seed)


def predict_sampled(
    model: Classifier,
    posterior: MeanFieldGaussian,
    ctx: FitContext,
    samples: int,
    seed: int,
) -> dict[str, SplitPrediction]:
    """Log-softmax of ``samples`` posterior draws on every evaluation split.

    Draw ``s`` comes from a generator seeded with ``(seed, s)``, so every split sees the
    same ``samples`` functions. A head-only posterior encodes each split once and
    samples the head; otherwise every draw is a full forward pass.

    Returns:
        ``{split: SplitPrediction(kind="logprobs", values [S, N, C])}``.
    """
    task = ctx.task()
    engine = ctx.engine
    model.eval()
    head_only = covers_only_head(posterior)

    def draw(s: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator(device=engine.device)
        generator.manual_seed(int(np.random.SeedSequence([seed, s]).generate_state(1)[0]))
        return posterior.sample(generator)

    out = {}
    for name in task.eval_splits():
        split = task.splits[name]
        engine.log(f"predict: {name} ({len(split)} examples, {samples} posterior draws)")
        if head_only:
            features = torch.from_numpy(
                encode_split(model.backbone, model.backbone, split, engine)
            ).to(engine.device)
            logits = [
                nn.functional.linear(features, d["head.weight"], d["head.bias"])
                for d in map(draw, range(samples))
            ]
            values = [torch.log_softmax(x.float(), -1).cpu().numpy() for x in logits]
        else:
            values = []
            for s in range(samples):
                weights = draw(s)
                logits = encode_split(
                    lambda b, w=weights: functional_call(model, w, (b,)),
                    model.backbone,
                    split,
                    engine,
                )
                values.append(torch.log_softmax(torch.from_numpy(logits), -1).numpy())
        out[name] = SplitPrediction(
            info=split.info,
            labels=split.labels,
            values=np.stack(values).astype(np.float32),
            kind="logprobs",
        )
    return out


class UAP(UAPMap):
    """UAP's variational form: a mean-field Gaussian posterior, MC-averaged predictions."""

    Hparams = UAPHparams

    def __init__(self, **hparams):
        super().__init__(**hparams)
        hp = self.hparams
        check_choice("stochastic_params", hp.stochastic_params, STOCHASTIC_PARAMS)
        if hp.train_samples < 1 or hp.eval_samples < 1 or hp.init_std <= 0:
            raise ValueError(
                "need train_samples >= 1, eval_samples >= 1 and init_std > 0; got "
                f"{hp.train_samples}, {hp.eval_samples}, {hp.init_std}"
            )

    def build_posterior(self, model: Classifier, ctx: FitContext) -> MeanFieldGaussian:
        """Gaussian over the head, or over every trained parameter."""
        named = {
            n: p
            for n, p in model.named_parameters()
            if p.requires_grad
            and (self.hparams.stochastic_params == "trained" or n.startswith("head."))
        }
        return MeanFieldGaussian(named, self.hparams.init_std)
