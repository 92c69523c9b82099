"""Dataset runs: both pipelines over a ``datasets.Dataset``, and sharding across 2 real CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from transformers.pipelines.pt_utils import KeyDataset

from sam2_pipelines import testing
from sam2_pipelines.core.masks import decode_rle
from sam2_pipelines.sharding import gather_results, map_sharded, run_pipeline_sharded, shard_dataset, shard_indices, write_sharded

ROOT = Path(__file__).resolve().parents[2]
AMG = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, output_mode="coco_rle")


def image_dataset(count: int = 5) -> datasets.Dataset:
    images = [Image.fromarray(testing.synthetic_image(96, 128, seed=seed)) for seed in range(count)]
    return datasets.Dataset.from_dict({"image": images, "index": list(range(count))}, features=datasets.Features({"image": datasets.Image(), "index": datasets.Value("int32")}))


def video_dataset(directory: Path) -> datasets.Dataset:
    rows = {"video": [], "prompts": []}
    for seed, (x, y) in enumerate([(16, 48), (40, 50)]):
        path = testing.write_video(directory / f"clip{seed}.mp4", testing.synthetic_frames(4, 64, 96, seed=seed))
        rows["video"].append(str(path))
        rows["prompts"].append(json.dumps([{"frame": 0, "obj_id": 1, "points": [[x, y]], "labels": [1]}]))
    return datasets.Dataset.from_dict(rows)


@pytest.fixture(scope="module")
def tracking_pipeline(tiny_video_model_dir):
    from transformers import pipeline

    return pipeline("video-object-tracking", model=tiny_video_model_dir)


def _masks(records):
    return [decode_rle(r["segmentation"]) for r in records]


def assert_same_masks(actual, expected):
    """Masks computed in another process (other thread count, other batch) agree up to border pixels."""
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        assert a.shape == b.shape
        union = np.logical_or(a, b).sum()
        assert union == 0 or np.logical_and(a, b).sum() / union > 0.98


def test_single_process_shard_is_everything():
    dataset = image_dataset(3)
    assert shard_indices(3) == [0, 1, 2]
    assert shard_dataset(dataset)["index"] == [0, 1, 2]
    assert gather_results(iter([1, 2])) == [1, 2]
    assert map_sharded(dataset, lambda row: row["index"] * 10) == [0, 10, 20]
    with pytest.raises(ValueError, match="num_rows"):
        shard_indices(-1)


def test_mask_generation_over_a_dataset_with_batch_size(mask_generator):
    dataset = image_dataset(3)
    batched = list(mask_generator(KeyDataset(dataset, "image"), batch_size=2, **AMG))
    assert len(batched) == 3
    for row, output in zip(dataset, batched):
        single = mask_generator(row["image"], **AMG)
        assert_same_masks(_masks(output["records"]), _masks(single["records"]))
    sharded = run_pipeline_sharded(mask_generator, dataset, column="image", batch_size=2, **AMG)
    assert [len(o["records"]) for o in sharded] == [len(o["records"]) for o in batched]
    with pytest.raises(ValueError, match="column 'pixels' is not in the dataset"):
        run_pipeline_sharded(mask_generator, dataset, column="pixels")


def test_tracking_over_a_dataset_of_videos(tracking_pipeline, tmp_path):
    tracker = tracking_pipeline
    dataset = video_dataset(tmp_path).select([1])
    outputs = map_sharded(dataset, lambda row: tracker(row["video"], prompts=json.loads(row["prompts"])))
    assert len(outputs) == 1
    for row, results in zip(dataset, outputs):
        direct = tracker(row["video"], prompts=json.loads(row["prompts"]))
        assert [r["frame_idx"] for r in results] == [r["frame_idx"] for r in direct] == [0, 1, 2, 3]
        for a, b in zip(results, direct):
            assert np.array_equal(a["masks"], b["masks"])
        assert any(np.asarray(r["masks"]).any() for r in results)


@pytest.mark.slow
def test_sharding_across_two_processes(tiny_image_model_dir, tiny_video_model_dir, mask_generator, tracking_pipeline, tmp_path):
    tracker = tracking_pipeline
    images = image_dataset(5)
    videos = video_dataset(tmp_path)
    images.save_to_disk(str(tmp_path / "data" / "images"))
    videos.save_to_disk(str(tmp_path / "data" / "videos"))
    out = tmp_path / "gathered.json"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "tests" / "scripts" / "sharded_run.py"), tiny_image_model_dir, tiny_video_model_dir, str(tmp_path / "data"), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    gathered = json.loads(out.read_text())

    assert gathered["num_processes"] == 2
    assert gathered["ranks"] == [0, 0, 0, 1, 1]  # contiguous shards, gathered in dataset order
    assert len(gathered["records"]) == len(images)
    for row, records in zip(images, gathered["records"]):
        expected = mask_generator(row["image"], **AMG)["records"]
        assert_same_masks(_masks(records), _masks(expected))
    assert gathered["written"] == [5, 0, 0]
    parts = sorted((tmp_path / "parts").glob("part-*.parquet"))
    assert len(parts) == 3  # process 0: rows 0-1 and 2; process 1: rows 3-4 (at most 2 rows per part)
    import pyarrow.parquet as pq

    rows = {row["id"]: row for part in parts for row in pq.read_table(part).to_pylist()}
    assert sorted(rows) == [str(i) for i in range(5)]
    for row, records in zip(images, gathered["records"]):
        assert [r["segmentation"] for r in json.loads(rows[str(row["index"])]["records"])] == [r["segmentation"] for r in records]
    assert [t["rank"] for t in gathered["tracks"]] == [0, 1]
    for row, track in zip(videos, gathered["tracks"]):
        direct = tracker(row["video"], prompts=json.loads(row["prompts"]))
        assert [f[0] for f in track["frames"]] == [int(r["frame_idx"]) for r in direct]
        for (frame_idx, object_ids, rles), reference in zip(track["frames"], direct):
            assert object_ids == [int(i) for i in reference["object_ids"]]
            assert_same_masks([decode_rle(rle) for rle in rles], [m.reshape(m.shape[-2:]) for m in np.asarray(reference["masks"])])


def test_writing_a_dataset_to_disk_as_it_goes_and_resuming(mask_generator, tracking_pipeline, tmp_path):
    """write_sharded (one process): rows equal the pipeline's, a bad image is an error row, a rerun resumes."""
    import pyarrow.parquet as pq

    from sam2_pipelines.io.exports import frame_record, json_ready

    good = [Image.fromarray(testing.synthetic_image(96, 128, seed=seed)) for seed in range(3)]
    encoded = []
    for image in good:
        buffer = __import__("io").BytesIO()
        image.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    dataset = datasets.Dataset.from_dict({"id": ["a", "b", "c", "bad"], "image": [{"bytes": b, "path": None} for b in encoded] + [{"bytes": b"junk", "path": None}]},
                                         features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()}))
    out = tmp_path / "parts"
    first = write_sharded(mask_generator, dataset.select([0, 3]), out, column="image", rows_per_file=1, **AMG)
    assert (first.done, first.failed, first.skipped) == (2, 1, 0)
    rest = write_sharded(mask_generator, dataset, out, column="image", rows_per_file=1, **AMG)
    assert (rest.done, rest.failed, rest.skipped) == (2, 0, 2)
    rows = {row["id"]: row for row in pq.read_table(out).to_pylist()}
    assert sorted(rows) == ["a", "b", "bad", "c"] and len(list(out.glob("part-*.parquet"))) == 4
    assert rows["bad"]["error"].startswith("ValueError: could not decode the image bytes") and rows["bad"]["records"] is None
    for name, image in zip("abc", good):
        expected = json.loads(json.dumps([json_ready(r) for r in mask_generator(np.asarray(image), **AMG)["records"]]))
        assert json.loads(rows[name]["records"]) == expected and rows[name]["num_masks"] == len(expected)
    with pytest.raises(ValueError, match="points_per_side"):
        write_sharded(mask_generator, dataset, tmp_path / "x", column="image", points_per_side=0)
    # videos: rows with their own prompts; a missing file is an error row
    videos = video_dataset(tmp_path)
    videos = datasets.Dataset.from_dict({"video": list(videos["video"]) + [str(tmp_path / "missing.mp4")], "prompts": list(videos["prompts"]) + [videos["prompts"][0]]})
    summary = write_sharded(tracking_pipeline, videos, tmp_path / "tracks", column="video", output_format="jsonl")
    assert (summary.done, summary.failed) == (3, 1)
    lines = {line["id"]: line for part in (tmp_path / "tracks").glob("part-*.jsonl") for line in map(json.loads, part.read_text().splitlines())}
    assert "video file" in lines["2"]["error"]
    for index in range(2):
        row = videos[index]
        expected = [frame_record(r) for r in tracking_pipeline(row["video"], prompts=json.loads(row["prompts"]), output="rle")]
        assert lines[str(index)]["frames"] == json.loads(json.dumps(expected))
