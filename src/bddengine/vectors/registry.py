"""The vector index implementations, registered once.

Name -> `IndexSpec`. The config's allowed values of ``mine.approximate_index`` come
from here, ``index_type`` in a mine run's result.json is the name, and the report and
summaries ask `is_exact` instead of spelling names. A new implementation is one module
(a `VectorIndex` and its `IndexFactory`) plus one entry below, or a `register` call
from that module.
"""

from __future__ import annotations

from bddengine.vectors.base import IndexSpec
from bddengine.vectors.exact import ExactIndex
from bddengine.vectors.faiss_ann import HNSW, IVF
from bddengine.vectors.lance import LanceFactory

FAISS = (("faiss", "faiss-cpu"),)
LANCE = (("lancedb", "lancedb"), ("lance", "pylance"))

EXACT_SPEC = IndexSpec("flat-ip", ExactIndex, exact=True, packages=FAISS,
                       summary="exact inner product over every row (no index built)")
EXACT = EXACT_SPEC.name
"""The exact index: searches up to ``mine.exact_max_pool`` rows, and the near-duplicate checks."""

INDEXES: dict[str, IndexSpec] = {s.name: s for s in (
    EXACT_SPEC,
    IndexSpec("hnsw", HNSW, exact=False, summary="FAISS HNSW graph (M=32, efConstruction 200)", packages=FAISS),
    IndexSpec("ivf", IVF, exact=False, summary="FAISS inverted file over k-means lists", packages=FAISS),
    IndexSpec("lancedb", LanceFactory(), exact=False, packages=LANCE,
              summary="LanceDB table (IVF_PQ above mine.lance.index_min_rows), written by embed, read at its version"),
)}
"""Index name -> its entry."""

def register(spec: IndexSpec, *, replace: bool = False) -> IndexSpec:
    """Add an index implementation under ``spec.name``.

    Raises:
        ValueError: the name is taken (and ``replace`` is False).
    """
    if spec.name in INDEXES and not replace:
        raise ValueError(f"vector index {spec.name!r} is already registered ({INDEXES[spec.name].summary})")
    INDEXES[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered index (the built-in ones included); an unknown name is ignored."""
    INDEXES.pop(name, None)


def index_names() -> list[str]:
    """The registered index names."""
    return list(INDEXES)


def index_spec(name: str) -> IndexSpec:
    """The entry of ``name``.

    Raises:
        ValueError: ``name`` is not registered.
    """
    if name not in INDEXES:
        raise ValueError(f"vector index {name!r} is not one of {index_names()}")
    return INDEXES[name]


def is_exact(name: str | None) -> bool:
    """Whether a recorded ``index_type`` names an exact index (False for names no longer registered)."""
    spec = INDEXES.get(name) if name else None
    return bool(spec and spec.exact)
