"""The network: a causal (decoder-only) transformer over event tokens, predicting the next token.

A token's input is the sum of its code embedding, its value-bin embedding, a projection of its
time features (the sinusoidal encoding of the hours since the previous event that the sequence
models use, plus age / 100) and a learned position embedding. A causal mask lets position i
attend only to positions <= i, so the state at an event depends only on it and earlier events.
The head scores `n_targets` classes: the next code, or the next (code, value bin) pair
(`ehrbench.pretrain.tokens.target_classes`).
"""

from __future__ import annotations

import torch
from torch import nn

from ehrbench.models.sequence import N_TIME_FEATURES, time_encoding


class NextCodeTransformer(nn.Module):
    """Token embeddings -> pre-norm causal transformer -> final norm -> next-token logits."""

    def __init__(
        self,
        vocab_size: int,
        value_bins: int,
        max_len: int,
        hidden: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        n_targets: int,
    ) -> None:
        super().__init__()
        self.code = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.value = nn.Embedding(value_bins + 1, hidden)
        self.time = nn.Linear(N_TIME_FEATURES + 1, hidden)
        self.position = nn.Embedding(max_len, hidden)
        layer = nn.TransformerEncoderLayer(
            hidden, n_heads, 2 * hidden, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, n_targets)

    def states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[batch, length, hidden] states; each depends only on its own and earlier tokens."""
        length = batch["code"].shape[1]
        times = torch.cat(
            [time_encoding(batch["hours"]), batch["age"].unsqueeze(-1) / 100.0], dim=-1
        )
        positions = torch.arange(length, device=batch["code"].device)
        x = (
            self.code(batch["code"])
            + self.value(batch["value_bin"])
            + self.time(times)
            + self.position(positions)
        )
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device)
        return self.norm(self.encoder(x, mask=mask, is_causal=True))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[batch, length, n_targets] logits of the token after each position."""
        return self.head(self.states(batch))
