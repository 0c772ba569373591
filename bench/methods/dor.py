"""DOR (dynamic outlier regularisation): a modifier of prompt tuning, ``coop+dor``, ``kgcoop+dor``.

Prompt tuning over-fits the base classes and leaves the text embeddings of *other*
words miscalibrated; DOR keeps them where zero-shot CLIP has them. Each step draws a
fresh batch of outlier words ``o_b`` from a pool of WordNet nouns unlike the task's
classes and adds

    lambda * (1 - (1/B) sum_b cos(psi'(o_b), psi_0(o_b)))

to the method's loss, where ``psi'`` is the text tower with the learned context
(``<context> o_b.``) and ``psi_0`` the frozen zero-shot embedding of ``o_b`` in
``dor_template`` (``a photo of a o_b.``). The pool is built once per task and backbone by
the features job (:func:`bench.engine.features.outlier_pool`): every WordNet noun
lemma that is not a class name (base or new), a part of one or a synonym of one
(:func:`bench.data.wordnet.outlier_nouns`), ranked by the mean cosine of its frozen
embedding to the base classes', top ``dor_pool_size`` kept, with its frozen
embeddings cached, so ``psi_0`` costs nothing per step. At initialisation from
``ctx_init`` = the template's words the two branches are the same prompt and the term
is 0 (tested).

Choices. The official repository (``ml-stat-Sustech/Outlier-Calibration``) could not be
fetched; DOR's trainer files were read from a code index: a batch of as many outlier
words as base classes per step (``ClassNameIterator(classnames_ood, n_cls, ...)``, here
consecutive slices of a seeded permutation of the pool, reshuffled when used up), the
learned branch ``prefix + " " + word + "."``, the frozen branch ``"a photo of a" + " " +
word + "."``, ``1 - mean cos`` of normalised features. K = 5000 and lambda 8 (CoOp) / 2
(others) come from secondary summaries of the paper (METHODS.md); its ECE is reported
here with the suite's metrics (15 bins headline, ``cal/ece_10bin`` as the papers' 10 bins).

References:
    Wang, Li, Wei, "Understanding and Mitigating Miscalibration in Prompt Tuning for
    Vision-Language Models", arXiv:2410.02681.
    https://github.com/ml-stat-Sustech/Outlier-Calibration
"""

from __future__ import annotations

import numpy as np
import torch


class OutlierSampler:
    """Consecutive batches of a seeded permutation of the pool, reshuffled when used up."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size < 1:
            raise ValueError(
                "DOR's outlier pool is empty: every WordNet noun was excluded as a class name "
                "or synonym; check data.wordnet (data.noun) and dor_pool_size"
            )
        self.size, self.batch_size = size, min(batch_size, size)
        self.rng = np.random.default_rng(seed)
        self.order, self.position = self.rng.permutation(size), 0

    def next_batch(self) -> np.ndarray:
        if self.position + self.batch_size > self.size:
            self.order, self.position = self.rng.permutation(self.size), 0
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch


class DORRegularizer:
    """DOR's term for a prompt learner (see module docstring).

    Args:
        features: The cell's :class:`bench.engine.features.FeatureSet` (its outlier pool).
        hparams: The method's hyperparameters (``dor_*`` keys).
        num_classes: Base classes (the default outlier batch size).
        seed: Seeds the outlier batches.
        method: The method's name, for messages.

    Raises:
        ValueError: The cache has no outlier pool, or one built with another template.
    """

    def __init__(self, features, hparams, num_classes: int, seed: int, method: str) -> None:
        pool = features.outliers
        if pool is None:
            raise ValueError(
                f"{method}+dor: the feature cache has no outlier pool; rerun its features job "
                "from a grid that lists this method (snakemake does so by itself)"
            )
        if pool.template != hparams.dor_template:
            raise ValueError(
                f"{method}+dor: the cache's outliers were embedded in {pool.template!r}, the "
                f"method asks for {hparams.dor_template!r}; rerun the features job"
            )
        # The pool is ranked, so a smaller K is its head.
        size = hparams.dor_pool_size
        self.words = pool.words[:size]
        self.frozen = torch.as_tensor(pool.embeddings[:size])
        batch = hparams.dor_batch_size or num_classes
        self.sampler = OutlierSampler(len(self.words), batch, seed)

    def loss(self, learner) -> torch.Tensor:
        """``1 - mean_b cos(psi'(o_b), psi_0(o_b))`` on a fresh batch of outliers."""
        index = self.sampler.next_batch()
        learned = learner.encode([self.words[i] for i in index])
        frozen = self.frozen[index].to(learned.device)
        return 1 - torch.nn.functional.cosine_similarity(learned, frozen, dim=-1).mean()
