"""FAISS retrieval indexes against brute force (numpy), the dense dual softmax and the full-matrix evaluation."""

import json

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from transformers import pipeline

from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from vidla_hf.evaluation import VideoIndex, dual_softmax, evaluate_retrieval, index_recall

# Recall@10 of the approximate indexes against the exact one, on clustered embeddings (real video
# embeddings cluster by content); the floors leave room below what they measure here (1.0 / ~0.99).
IVF_RECALL_FLOOR, HNSW_RECALL_FLOOR = 0.9, 0.9


def normalized(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 48))
    gallery = (centres[rng.integers(0, 60, 4000)] + 0.6 * rng.normal(size=(4000, 48))).astype(np.float32)
    queries = (gallery[:300] + 0.3 * rng.normal(size=(300, 48))).astype(np.float32)
    return gallery, queries


def brute_force(gallery, queries, k):
    similarity = normalized(queries.astype(np.float64)) @ normalized(gallery.astype(np.float64)).T
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(similarity, order, axis=1), order


def test_the_exact_index_finds_the_brute_force_top_k(data):
    gallery, queries = data
    ids = [f"v{i}" for i in range(len(gallery))]
    scores, found = VideoIndex.build(gallery, ids).search(queries, k=10)
    reference_scores, reference = brute_force(gallery, queries, 10)
    assert found == [[f"v{i}" for i in row] for row in reference]
    np.testing.assert_allclose(scores, reference_scores, atol=1e-5)


@pytest.mark.parametrize(("kind", "floor"), [("ivf", IVF_RECALL_FLOOR), ("hnsw", HNSW_RECALL_FLOOR)])
def test_approximate_indexes_recall_most_of_the_exact_top_10(data, kind, floor):
    gallery, queries = data
    _, reference = brute_force(gallery, queries, 10)
    _, found = VideoIndex.build(gallery, kind=kind).search(queries, k=10)
    recall = np.mean([len(set(a) & set(b.tolist())) / 10 for a, b in zip(found, reference, strict=True)])
    print(f"{kind} recall@10 against exact: {recall:.3f}")
    assert recall >= floor


def test_dual_softmax_on_the_candidates_equals_the_dense_computation(data):
    gallery, queries = data
    gallery, queries = gallery[:500], queries[:200]
    index = VideoIndex.build(gallery)
    # the reference from the vectors as the index stores them (normalised in float32), in float64
    stored_queries, stored_gallery = (
        normalized(m).astype(np.float32).astype(np.float64) for m in (queries, gallery)
    )
    dense = dual_softmax(torch.from_numpy(stored_queries @ stored_gallery.T)).numpy()
    # every candidate: the whole re-scored ranking
    scores, found = index.rescore_dual_softmax(queries, k=len(gallery))
    assert all(sorted(row) == list(range(len(gallery))) for row in found)
    # found in the dense order (far candidates re-score to ~0 and may tie: compared by value, not position)
    np.testing.assert_allclose(np.take_along_axis(dense, np.array(found), axis=1), -np.sort(-dense, axis=1))
    np.testing.assert_allclose(scores, -np.sort(-dense, axis=1), rtol=1e-5, atol=1e-12)
    # the top 5: re-scored exactly (the normaliser runs over all queries), re-sorted within the candidates
    scores, found = index.rescore_dual_softmax(queries, k=5)
    _, plain = brute_force(gallery, queries, 5)
    assert all(set(row) == set(p.tolist()) for row, p in zip(found, plain, strict=True))
    np.testing.assert_allclose(scores, np.take_along_axis(dense, np.array(found), axis=1), rtol=1e-5)


def test_recall_through_the_index_equals_the_full_matrix_evaluation(data):
    gallery, queries = data
    gallery = gallery[: len(queries)]  # query i matches video i
    reference = evaluate_retrieval(torch.from_numpy(queries).double(), torch.from_numpy(gallery).double())
    index = VideoIndex.build(gallery, ids=[f"v{i}" for i in range(len(gallery))])
    targets = [f"v{i}" for i in range(len(queries))]
    recall = index_recall(queries, index, targets)
    assert recall == pytest.approx({k: reference["text_to_video"][k] for k in ("R@1", "R@5", "R@10")})
    # DSL over the top 10 only can promote nothing from beyond it; with every video a candidate it is exact
    full = VideoIndex.build(gallery, ids=targets)
    dsl = index_recall(queries, full, targets, ks=(1, 5, len(gallery)), dsl_temperature=100.0)
    assert dsl["R@1"] == pytest.approx(reference["text_to_video_dsl"]["R@1"])
    assert dsl["R@5"] == pytest.approx(reference["text_to_video_dsl"]["R@5"])


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_a_saved_index_loads_and_answers_the_same(data, tmp_path, kind):
    gallery, queries = data
    index = VideoIndex.build(gallery, ids=[f"v{i}" for i in range(len(gallery))], kind=kind)
    folder = index.save(tmp_path / "index")
    loaded = VideoIndex.load(folder)
    assert loaded.settings == index.settings and len(loaded) == len(gallery)
    assert loaded.search(queries, 10)[1] == index.search(queries, 10)[1]
    with pytest.raises(ValueError, match="not empty"):
        index.save(folder)
    index.save(folder, overwrite=True)  # a saved index may be replaced when asked
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not empty"):
        index.save(tmp_path / "theirs", overwrite=True)
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "theirs"], "no staging folder left"


def test_indexes_build_from_parquet_files_and_datasets(data, tmp_path):
    gallery, queries = data
    ids = [f"v{i}" for i in range(len(gallery))]
    for part in range(2):  # two files, as a sharded embedding job writes them
        rows = slice(part * 2000, (part + 1) * 2000)
        table = pa.table({"id": ids[rows], "embedding": gallery[rows].tolist(), "duration": [1.0] * 2000})
        pq.write_table(table, tmp_path / f"part-{part}.parquet")
    reference = VideoIndex.build(gallery, ids).search(queries, 10)[1]
    assert VideoIndex.from_parquet(tmp_path).search(queries, 10)[1] == reference
    dataset = datasets.Dataset.from_dict({"id": ids, "embedding": gallery.tolist()})
    assert VideoIndex.from_dataset(dataset).search(queries, 10)[1] == reference
    with pytest.raises(ValueError, match="no column"):
        VideoIndex.from_dataset(dataset, embedding_column="vectors")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda g: VideoIndex.build(g, kind="lsh"), "kind"),
        (lambda g: VideoIndex.build(g[:, :0]), "matrix"),
        (lambda g: VideoIndex.build(np.where(np.arange(48) == 0, np.nan, g)), "NaN"),
        (lambda g: VideoIndex.build(np.zeros_like(g)), "all-zero"),
        (lambda g: VideoIndex.build(g, ids=["a"] * len(g)), "distinct"),
        (lambda g: VideoIndex.build(g, kind="ivf", nlist=len(g) + 1), "nlist"),
        (lambda g: VideoIndex.build(g[:50]).search(g[:2, :10], 5), "dimensions"),
        (lambda g: VideoIndex.build(g[:50]).search(g[:2], 0), "`k`"),
        (
            lambda g: VideoIndex.build(g[:50]).rescore_dual_softmax(g[:2], 5, temperature=float("inf")),
            "temperature",
        ),
        (lambda g: index_recall(g[:2], VideoIndex.build(g[:50]), [0, 99]), "not in the index"),
    ],
)
def test_bad_input_is_refused_clearly(data, call, match):
    with pytest.raises(ValueError, match=match):
        call(data[0][:200])


def test_the_retrieval_pipeline_searches_an_index_with_the_models_text_embedding(tmp_path):
    torch.manual_seed(0)
    model = VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2)).eval()
    processor = VidLAProcessor(
        VidLAVideoProcessor(num_frames=2, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        build_clip_tokenizer(),
    )
    rng = np.random.default_rng(1)
    gallery = rng.normal(size=(300, model.config.projection_dim)).astype(np.float32)
    index = VideoIndex.build(gallery, ids=[f"v{i}" for i in range(300)])
    retriever = pipeline("video-text-retrieval", model=model, processor=processor)
    results = retriever("a red circle moves left", index=index, top_k=4)
    # the reference: the model's own text embedding, searched by brute force
    with torch.inference_mode():
        text = model.get_text_features(**processor(text=["a red circle moves left"], return_tensors="pt"))
    _, order = brute_force(gallery, text.pooler_output.numpy(), 4)
    assert [r["id"] for r in results] == [f"v{i}" for i in order[0]]
    similarity = torch.tensor([r["similarity"] for r in results])
    expected = (similarity * model.logit_scale.exp()).softmax(dim=-1)
    assert torch.allclose(torch.tensor([r["score"] for r in results]), expected, atol=1e-6)
    with pytest.raises(ValueError, match="exactly one of"):
        retriever("a query", index=index, texts=["a text"])
    with pytest.raises(TypeError, match="search"):
        retriever("a query", index=json)
