"""L2-SP: full fine-tuning with a quadratic pull toward the pretrained weights.

UAP's parameter-space term without its function-space term, so the two share every
setting and the comparison isolates the context-point prior::

    L(theta) = (1/B) sum_i CE(f(x_i; theta), y_i)
             + (lambda/N) ( ||w_S - w_S^0||^2 + ||w_head||^2 ) / (2 sigma_p^2)

``w_S`` are the encoder's weights (``w_S^0`` pretrained; ``prior_center: zero`` turns
the pull into plain L2), the new head is pulled toward 0. Li et al.'s coefficients
are ``alpha = lambda / (N sigma_p^2)`` for the encoder and ``beta`` the same for the
head (they use one value per term; here the two are tied, as in UAP's prior).

References:
    Li, Grandvalet & Davoine, "Explicit Inductive Bias for Transfer Learning with
    Convolutional Networks", ICML 2018.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bench.engine.loop import OptimConfig
from bench.methods.uap import UAPMap, UAPMapHparams


@dataclass
class L2SPHparams(OptimConfig):
    """``full_ft``'s optimiser plus the prior's weight, variance and centre.

    Attributes:
        prior_weight: ``lambda``.
        prior_var: ``sigma_p^2``.
        prior_center: ``pretrained`` (L2-SP) or ``zero`` (plain L2).
    """

    prior_weight: float = 1.0
    prior_var: float = 1.0
    prior_center: str = "pretrained"


class L2SP(UAPMap):
    """UAP's MAP objective with the function-space term switched off."""

    Hparams = L2SPHparams
    function_space = False

    def __init__(self, **hparams):
        super().__init__(**hparams)  # validated against L2-SP's own keys
        # The objective reads UAP-MAP's hyperparameters; the context keys go unused.
        self.hparams = UAPMapHparams(**asdict(self.hparams))
