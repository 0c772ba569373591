"""A mean-field Gaussian posterior over some of a model's parameters.

``q(theta) = N(mu, diag(sigma^2))`` where the means ``mu`` *are* the model's own
parameters (so the optimiser, the prior terms and a deterministic forward pass all see
them as usual) and ``sigma = softplus(rho)`` is a parameter of this module, one per
weight. Samples are reparameterised, ``mu + sigma * eps``, and fed to the model with
:func:`torch.func.functional_call`, so any ``nn.Module`` works unchanged.

References:
    Blundell et al., "Weight Uncertainty in Neural Networks", ICML 2015 (softplus
    parameterisation, reparameterised mean-field Gaussian).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def inverse_softplus(value: float) -> float:
    """``rho`` with ``softplus(rho) == value`` (stable for small values)."""
    return value + math.log(-math.expm1(-value))


class MeanFieldGaussian(nn.Module):
    """Diagonal Gaussian over named parameters of a model.

    Args:
        named_parameters: ``{qualified name in the model: parameter}``; the parameters
            are the means and stay owned by the model.
        init_std: Initial standard deviation of every weight.
    """

    def __init__(self, named_parameters: dict[str, nn.Parameter], init_std: float):
        super().__init__()
        if not named_parameters:
            raise ValueError("a mean-field posterior needs at least one parameter")
        if init_std <= 0:
            raise ValueError(f"init_std must be positive, got {init_std}")
        self.names = list(named_parameters)
        # A plain list, not registered: the model owns the means.
        self._means = list(named_parameters.values())
        rho = inverse_softplus(init_std)
        self.rho = nn.ParameterList(
            [nn.Parameter(torch.full_like(p.detach(), rho)) for p in self._means]
        )

    @property
    def means(self) -> list[nn.Parameter]:
        return self._means

    def stds(self) -> list[torch.Tensor]:
        return [nn.functional.softplus(rho) for rho in self.rho]

    def numel(self) -> int:
        """Number of stochastic weights."""
        return sum(p.numel() for p in self._means)

    def sample(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One reparameterised draw ``{name: mu + sigma * eps}`` (differentiable)."""
        draws = {}
        for name, mean, std in zip(self.names, self._means, self.stds(), strict=True):
            noise = torch.randn(
                mean.shape, generator=generator, device=mean.device, dtype=mean.dtype
            )
            draws[name] = mean + std * noise
        return draws

    def kl_to_gaussian(self, centers: list[torch.Tensor | None], prior_var: float) -> torch.Tensor:
        """``KL(q || N(centers, prior_var I))`` summed over all weights (closed form).

        Args:
            centers: Prior mean of each parameter, in order; None is zero.
            prior_var: Prior variance ``sigma_p^2``.
        """
        total = torch.zeros((), device=self._means[0].device)
        log_prior_var = math.log(prior_var)
        for mean, std, center in zip(self._means, self.stds(), centers, strict=True):
            offset = mean if center is None else mean - center
            var = std.float().pow(2)
            total = (
                total
                + 0.5
                * (
                    (var + offset.float().pow(2)) / prior_var - 1.0 - var.log() + log_prior_var
                ).sum()
            )
        return total

    def mean_std(self) -> float:
        """Average posterior standard deviation over all weights (for run.json)."""
        total = sum(float(s.detach().sum()) for s in self.stds())
        return total / max(1, self.numel())
