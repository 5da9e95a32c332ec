"""Vector search: one index protocol, its implementations, and the registry that names them.

`VectorIndex` (build at embed time or lazily, open from a run, append, search with
metadata filters, check recall) is implemented exactly (`exact.ExactIndex`) and
approximately with FAISS (`faiss_ann`: HNSW, IVF); `registry.INDEXES` names them.
The mine stage searches through `search.SearchPlan`, the split's near-duplicate check
through `exact.ExactIndex.within`.
"""

from bddengine.vectors.base import Hits, IndexFactory, IndexSpec, RecallCheck, VectorIndex
from bddengine.vectors.registry import EXACT, INDEXES, index_names, index_spec, is_exact, register, unregister
from bddengine.vectors.search import KnnResult, SearchPlan, knn_search
from bddengine.vectors.where import EveryNth, Filter, KeepRows, NotAbove, NotIn, keep_mask

__all__ = ["EXACT", "INDEXES", "EveryNth", "Filter", "Hits", "IndexFactory", "IndexSpec", "KeepRows", "KnnResult",
           "NotAbove", "NotIn", "RecallCheck", "SearchPlan", "VectorIndex", "index_names", "index_spec", "is_exact",
           "keep_mask", "knn_search", "register", "unregister"]
