"""Sequence models for VDI's spatial-dynamic branch (paper Eq. 4): `transformer` and `lstm`.

Both map per-frame vectors [B, T, D] (with an optional [B, T] padding mask, True = padded) to
[B, T, D]; the branch averages the outputs over the valid frames. The valid frames need not be
a prefix: under `scope=moment` they are the sentence's moment, which may start anywhere, and each
model reads exactly those frames, in time order.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from vdi_cli.hookspecs import hookimpl


class TransformerConfig(BaseModel):
    layers: int = Field(1, ge=1, description="Transformer encoder layers.")
    heads: int = Field(8, ge=1, description="Attention heads (must divide the dimension).")
    ff_mult: int = Field(2, ge=1, description="Feed-forward width as a multiple of the dimension.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout inside the encoder.")
    max_len: int = Field(1024, ge=1, description="Longest sequence (learned positions).")


class LSTMConfig(BaseModel):
    layers: int = Field(1, ge=1, description="Stacked LSTM layers.")
    bidirectional: bool = Field(True, description="Read the frames in both directions.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout between layers.")


def build_transformer(config: TransformerConfig, dim: int) -> Any:
    import torch
    from torch import nn

    if dim % config.heads:
        from vdi_cli.errors import ConfigError

        raise ConfigError(
            f"transformer heads={config.heads} does not divide the dimension {dim}",
            hint="pass -o heads=N with N dividing the feature dimension",
        )

    class TransformerSequence(nn.Module):
        """A transformer encoder with learned positions over the frame sequence."""

        def __init__(self) -> None:
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(config.max_len, dim))
            nn.init.normal_(self.pos, std=0.02)
            layer = nn.TransformerEncoderLayer(
                dim,
                config.heads,
                dim_feedforward=dim * config.ff_mult,
                dropout=config.dropout,
                batch_first=True,
            )
            self.encoder = nn.TransformerEncoder(
                layer, config.layers, enable_nested_tensor=False
            )

        def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
            x = x + self.pos[: x.shape[1]]
            return self.encoder(x, src_key_padding_mask=pad_mask)

    return TransformerSequence()


def build_lstm(config: LSTMConfig, dim: int) -> Any:
    import torch
    from torch import nn

    class LSTMSequence(nn.Module):
        """An LSTM over the frames; a bidirectional one is projected back to `dim`."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(
                dim,
                dim,
                num_layers=config.layers,
                batch_first=True,
                bidirectional=config.bidirectional,
                dropout=config.dropout if config.layers > 1 else 0.0,
            )
            self.out = nn.Linear(dim * 2, dim) if config.bidirectional else nn.Identity()

        def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
            if pad_mask is None:
                return self.out(self.lstm(x)[0])
            # The visible frames need not be a prefix (scope=moment: a moment that starts later).
            # Packing reads the first `length` steps, so move each row's visible frames to the
            # front (in time order), run the packed LSTM, and put the outputs back in place.
            order = torch.argsort(pad_mask.to(torch.int8), dim=1, stable=True)
            lengths = (~pad_mask).sum(1).clamp(min=1).cpu()
            front = x.gather(1, order.unsqueeze(-1).expand_as(x))
            packed = nn.utils.rnn.pack_padded_sequence(
                front, lengths, batch_first=True, enforce_sorted=False
            )
            y, _ = self.lstm(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
            back = torch.empty_like(y).scatter_(1, order.unsqueeze(-1).expand_as(y), y)
            return self.out(back)

    return LSTMSequence()


@hookimpl
def register_sequence_models(register: Any) -> None:
    register(
        "transformer",
        build_transformer,
        config=TransformerConfig,
        description="Transformer encoder over frames (the paper's default for L_sd).",
        requires=("clip",),
    )
    register(
        "lstm",
        build_lstm,
        config=LSTMConfig,
        description="(Bi)LSTM over frames (the paper's Table 3 alternative).",
        requires=("clip",),
    )
