"""The model layer: each strategy is fitted and scored here, and only here.

One module per strategy. A *fit* turns training data and the strategy's settings section into
vectors in the trained id space (what `train` and `embed` write back); a *model* scores a batch
of users over one catalogue of books (what `recommend`, `evaluate`, `tune` and the quality gate
rank with), built either from a fit or from the vectors stored in the database.

- popular: `PopularModel` (book popularity)
- cf: `fit_cf` → `CfVectors` → `CfModel`
- gnn: `fit_gnn` (built-in walks + skip-gram, or the node2vec package) → `BookVectors` →
  `EmbeddingModel`
- content: `fit_content` → `BookVectors` → `EmbeddingModel`
- hybrid: `HybridModel` over the others
- `fitting.fit_models`: every model a set of strategies needs, fitted on one training set
- `evaluate.evaluate`: fit them on a split and measure them

Import from the modules; this package itself holds only the strategies' names.
"""

# The strategies recommend and evaluate know, in evaluate's order.
STRATEGIES: tuple[str, ...] = ("popular", "cf", "gnn", "content", "hybrid")
# The strategies with vectors in the database, and the command that writes them.
VECTOR_STRATEGIES: dict[str, str] = {
    "cf": "bookrec train cf",
    "gnn": "bookrec train gnn",
    "content": "bookrec embed",
}
