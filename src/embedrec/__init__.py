"""embedrec: embedding recommenders for explicit ratings, compared fairly.

The Python API mirrors the CLI::

    import embedrec
    data = embedrec.load_movielens("ml-latest-small")
    result = embedrec.run_comparison(data, preset=embedrec.get_preset("reference"), seeds=3)
    result.summary()

    model = embedrec.train_bundle(data, "biased", embedrec.get_preset("default"))
    embedrec.save_model(model, "models/biased")
    model = embedrec.load_model("models/biased")
    embedrec.recommend(model, user=1, k=10)             # a DataFrame with titles
    embedrec.similar_items(model, "Toy Story (1995)")
    embedrec.recommend_for_ratings(model, [("Toy Story (1995)", 5), (2571, 4)])

Names are imported on first use: loading a model and recommending never imports torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_WHERE = {
    "Comparison": "compare", "run_comparison": "compare", "write_results": "compare",
    "Ratings": "data", "Split": "data", "load_movielens": "data", "load_ratings_file": "data",
    "make_split": "data", "random_split": "data",
    "ConfigError": "errors", "DataError": "errors", "DownloadError": "errors",
    "EmbedrecError": "errors", "TrainingError": "errors",
    "evaluate_ratings": "evaluation", "evaluate_ranking": "evaluation",
    "BiasBaseline": "models", "GlobalMean": "models", "Popular": "models",
    "ModelSpec": "models", "Capabilities": "models", "Shape": "models", "register": "models",
    "Scorer": "models",
    "ModelBundle": "persistence", "ModelFileError": "persistence", "load_model": "persistence",
    "save_model": "persistence",
    "PRESETS": "presets", "Preset": "presets", "get_preset": "presets",
    "SplitConfig": "presets", "EvalConfig": "presets",
    "predict": "recommender", "recommend": "recommender", "recommend_all": "recommender",
    "recommend_for_ratings": "foldin", "similar_items": "recommender",
    "TrainConfig": "training", "fit": "training", "train_model": "training",
    "train_bundle": "experiment",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f"embedrec.{_WHERE[name]}"), name)
        if name != "recommend":  # the function would shadow the embedrec.recommender module
            globals()[name] = value
        return value
    raise AttributeError(f"module 'embedrec' has no attribute {name!r}")
