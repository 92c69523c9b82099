"""Batch runs on a real Ray cluster started here (no mocks): results, bad rows, faults, resume, inputs.

A local 2-CPU cluster serves the module; the multi-node test starts its own two-node cluster. Every test
compares against the single-process pipeline on the same tiny model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_pipelines import testing

ray = pytest.importorskip("ray")
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from sam2_pipelines.distributed.ray import generate_masks, track_videos  # noqa: E402

AMG = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
PROMPTS = [{"frame": 0, "obj_id": 1, "points": [[40, 48]], "labels": [1]}]
RAY_ARGS = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)


def ray_processes() -> list:
    import psutil

    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            line = " ".join(process.info["cmdline"] or [])
        except (psutil.Error, TypeError):
            continue
        if line.startswith("ray::") or "/ray/core/src/ray/" in line or "ray/_private/workers/default_worker.py" in line:
            found.append(process)
    return found


def assert_no_ray_processes(deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while ray_processes() and time.monotonic() < end:
        time.sleep(0.5)
    assert not ray_processes(), "Ray processes are still running after shutdown"


@pytest.fixture(scope="module")
def local_cluster():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, **RAY_ARGS)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    assert_no_ray_processes()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for seed in range(6):
        Image.fromarray(testing.synthetic_image(96, 128, seed=seed)).save(folder / f"img{seed:02d}.png")
    (folder / "nested").mkdir()
    Image.fromarray(testing.synthetic_image(64, 80, seed=9)).save(folder / "nested" / "small.jpg")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")
    return folder


def read_rows(output: Path) -> dict[str, dict]:
    table = pq.read_table(output).to_pylist()  # every part file of the folder; nulls stay None
    rows = {row["id"]: row for row in table}
    assert len(rows) == len(table), "an id was written more than once"
    return rows


def single_process_records(model_dir: str, path: Path) -> list:
    """The plain pipeline's records for one image, with one torch thread like each Ray worker."""
    from transformers import pipeline

    from sam2_pipelines.io.exports import json_ready
    from sam2_pipelines.core.images import read_image_file

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = pipeline("mask-generation", model=model_dir)
        output = generator(read_image_file(path), output_mode="coco_rle", **AMG)
    finally:
        torch.set_num_threads(threads)
    return json.loads(json.dumps([json_ready(r) for r in output["records"]]))


def test_masks_of_a_folder_equal_the_single_process_pipeline(local_cluster, photos, tiny_image_model_dir, tmp_path):
    out = tmp_path / "out"
    summary = generate_masks(photos, out, model=tiny_image_model_dir, workers=2, batch_size=2, progress=False, **AMG)
    rows = read_rows(out)
    images = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*") if p.is_file())
    assert sorted(rows) == images
    assert (summary.done, summary.failed, summary.skipped) == (len(images), 1, 0)
    assert rows["corrupt.jpg"]["error"].startswith("ValueError: could not read image file")
    assert rows["corrupt.jpg"]["records"] is None
    for name in images:
        if name == "corrupt.jpg":
            continue
        row = rows[name]
        assert row["error"] is None
        expected = single_process_records(tiny_image_model_dir, photos / name)
        assert json.loads(row["records"]) == expected
        assert row["num_masks"] == len(expected) > 0
        assert (row["height"], row["width"]) == Image.open(photos / name).size[::-1]
    # run again: everything is skipped, nothing is rewritten
    parts = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    again = generate_masks(photos, out, model=tiny_image_model_dir, workers=2, batch_size=2, progress=False, **AMG)
    assert (again.done, again.skipped) == (0, len(images))
    assert {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == parts


def test_bad_arguments_are_refused_before_any_work(local_cluster, photos, tiny_image_model_dir, tmp_path):
    with pytest.raises(ValueError, match="points_per_side must be a positive int"):
        generate_masks(photos, tmp_path / "a", model=tiny_image_model_dir, points_per_side=0)
    with pytest.raises(ValueError, match="output_format must be one of parquet, jsonl"):
        generate_masks(photos, tmp_path / "a", model=tiny_image_model_dir, output_format="csv")
    with pytest.raises(ValueError, match="workers must be"):
        generate_masks(photos, tmp_path / "a", model=tiny_image_model_dir, workers=0)
    with pytest.raises(ValueError, match="does not exist"):
        generate_masks(tmp_path / "nowhere", tmp_path / "a", model=tiny_image_model_dir)
    with pytest.raises(ValueError, match="more than once"):
        generate_masks([str(photos / "img00.png")] * 2, tmp_path / "a", model=tiny_image_model_dir)
    with pytest.raises(ValueError, match="no prompts"):
        track_videos([str(photos / "img00.png")], tmp_path / "a", model=tiny_image_model_dir)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        generate_masks(photos, tmp_path / "file", model=tiny_image_model_dir)
    assert not (tmp_path / "a").exists()


def test_jsonl_output_and_a_format_switch_refused(local_cluster, photos, tiny_image_model_dir, tmp_path):
    out = tmp_path / "out"
    subset = [str(photos / "img00.png"), str(photos / "img01.png")]
    generate_masks(subset, out, model=tiny_image_model_dir, output_format="jsonl", progress=False, **AMG)
    lines = [json.loads(line) for part in sorted(out.glob("part-*.jsonl")) for line in part.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == subset
    for line in lines:
        assert line["records"] == single_process_records(tiny_image_model_dir, Path(line["id"]))
    with pytest.raises(ValueError, match="another format"):
        generate_masks(subset, out, model=tiny_image_model_dir, output_format="parquet", **AMG)


def test_videos_with_a_missing_video_and_a_bad_prompt(local_cluster, tiny_video_model_dir, tmp_path):
    from transformers import pipeline

    from sam2_pipelines.io.exports import frame_record

    videos = [testing.write_video(tmp_path / f"clip{seed}.mp4", testing.synthetic_frames(4, 64, 96, seed=seed)) for seed in range(2)]
    rows = [
        {"id": "a", "video": str(videos[0]), "prompts": json.dumps(PROMPTS)},
        {"id": "b", "video": str(videos[1]), "prompts": json.dumps([{"frame": 0, "obj_id": 3, "box": [10, 10, 50, 50]}]), "max_frames": 3},
        {"id": "missing", "video": str(tmp_path / "missing.mp4"), "prompts": json.dumps(PROMPTS)},
        {"id": "bad-prompt", "video": str(videos[0]), "prompts": json.dumps([{"frame": 0, "obj_id": 1, "points": [[1, 2, 3]]}])},
    ]
    out = tmp_path / "tracks"
    summary = track_videos(rows, out, model=tiny_video_model_dir, workers=2, progress=False)
    assert (summary.done, summary.failed) == (4, 2)
    written = read_rows(out)
    assert "video file" in written["missing"]["error"] and written["missing"]["frames"] is None
    assert written["bad-prompt"]["error"].startswith("ValueError")
    torch.set_num_threads(1)
    try:
        tracker = pipeline("video-object-tracking", model=tiny_video_model_dir)
        for row in rows[:2]:
            options = {"max_frames": row["max_frames"]} if "max_frames" in row else {}
            expected = [frame_record(r) for r in tracker(row["video"], prompts=json.loads(row["prompts"]), output="rle", **options)]
            got = written[row["id"]]
            assert json.loads(got["frames"]) == json.loads(json.dumps(expected))
            assert got["num_frames"] == len(expected) == (3 if "max_frames" in row else 4)
            assert list(got["object_ids"]) == sorted({i for f in expected for i in f["object_ids"]})
    finally:
        torch.set_num_threads(2)


def test_cli_batch_track_over_a_jsonl_of_rows(local_cluster, tiny_video_model_dir, tmp_path):
    video = testing.write_video(tmp_path / "clip.mp4", testing.synthetic_frames(3, 64, 96))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in [{"id": "clip", "video": str(video)}, {"id": "gone", "video": str(tmp_path / "gone.mp4")}]))
    base = [sys.executable, "-m", "sam2_pipelines.cli", "batch", "track", str(rows), "--model", tiny_video_model_dir, "--address", local_cluster, "--no-progress"]
    bad = subprocess.run(base + ["--out", str(tmp_path / "o"), "--prompts", "[{"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--prompts must be JSON" in bad.stderr
    result = subprocess.run(base + ["--out", str(tmp_path / "o"), "--prompts", json.dumps(PROMPTS), "--output-format", "jsonl", "--max-frames", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rows written (1 with errors), 0 skipped" in result.stdout
    lines = {line["id"]: line for part in (tmp_path / "o").glob("part-*.jsonl") for line in map(json.loads, part.read_text().splitlines())}
    assert lines["clip"]["num_frames"] == 2 and lines["clip"]["object_ids"] == [1] and lines["clip"]["error"] is None
    assert "video file" in lines["gone"]["error"]


@pytest.mark.slow
def test_a_datasets_dataset_input(local_cluster, photos, tiny_image_model_dir, tmp_path):
    import datasets

    paths = [photos / "img00.png", photos / "img03.png", photos / "corrupt.jpg"]
    dataset = datasets.Dataset.from_dict({"image": [str(p) for p in paths[:2]]}, features=datasets.Features({"image": datasets.Image()}))
    out = tmp_path / "hf"
    summary = generate_masks(dataset, out, model=tiny_image_model_dir, progress=False, **AMG)
    rows = read_rows(out)
    assert sorted(rows) == ["0", "1"] and summary.done == 2
    for index, path in enumerate(paths[:2]):
        assert json.loads(rows[str(index)]["records"]) == single_process_records(tiny_image_model_dir, path)
    # an id column names the rows; a bytes cell that is no image becomes an error row; a rerun resumes
    with_ids = datasets.Dataset.from_dict({"id": ["x", "y", "z"], "image": [p.read_bytes() for p in paths]})
    first = generate_masks(with_ids.select([0]), out / "ids", model=tiny_image_model_dir, progress=False, **AMG)
    rest = generate_masks(with_ids, out / "ids", model=tiny_image_model_dir, progress=False, **AMG)
    assert (first.done, rest.done, rest.skipped, rest.failed) == (1, 2, 1, 1)
    rows = read_rows(out / "ids")
    assert sorted(rows) == ["x", "y", "z"] and rows["z"]["error"].startswith("ValueError: could not decode the image bytes")
    assert json.loads(rows["y"]["records"]) == single_process_records(tiny_image_model_dir, paths[1])


def _many_images(folder: Path, count: int) -> Path:
    folder.mkdir()
    for seed in range(count):
        Image.fromarray(testing.synthetic_image(96, 128, seed=seed % 7)).save(folder / f"{seed:03d}.png")
    return folder


@pytest.mark.slow
def test_a_worker_killed_mid_run_costs_a_retry_not_the_run(local_cluster, tiny_image_model_dir, tmp_path):
    import psutil

    images = _many_images(tmp_path / "images", 40)
    reference = tmp_path / "reference"
    generate_masks(images, reference, model=tiny_image_model_dir, workers=2, batch_size=1, progress=False, **AMG)
    out = tmp_path / "out"
    killed = []

    def kill_one_worker():
        end = time.monotonic() + 120
        while time.monotonic() < end and not killed:
            if out.is_dir() and any(out.glob("part-*.parquet")):
                workers = [p for p in ray_processes() if "MapWorker(MapBatches(PartWriter))" in " ".join(p.cmdline())]
                if workers:
                    done_before = len(list(out.glob("part-*.parquet")))
                    workers[0].send_signal(signal.SIGKILL)
                    killed.append(done_before)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    summary = generate_masks(images, out, model=tiny_image_model_dir, workers=2, batch_size=1, progress=False, **AMG)
    killer.join()
    assert killed and killed[0] < 40, "the worker was not killed mid-run"
    assert summary.done == 40
    assert read_rows(out).keys() == read_rows(reference).keys()
    expected = read_rows(reference)
    for row_id, row in read_rows(out).items():
        assert row["records"] == expected[row_id]["records"]
    assert not [p for p in out.iterdir() if not p.name.startswith("part-")]
    del psutil


@pytest.mark.slow
def test_interrupted_then_resumed_equals_one_uninterrupted_run(local_cluster, tiny_image_model_dir, tmp_path):
    images = _many_images(tmp_path / "images", 30)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sam2_pipelines.cli", "batch", "masks", str(images), "--out", str(out), "--model", tiny_image_model_dir,
               "--address", local_cluster, "--batch-size", "1", "--no-progress", "--points-per-side", "4", "--pred-iou-thresh", "0",
               "--stability-score-thresh", "0"]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    end = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("part-*.parquet"))) and driver.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)  # the driver dies: its job's workers go with it
    driver.wait()
    written = len(list(out.glob("part-*.parquet")))
    assert 0 < written < 30, f"the run was not interrupted mid-way ({written} of 30 parts)"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"skipped as already in {out}" in resumed.stdout
    done = int(resumed.stdout.split(": ")[-1].split(" rows written")[0])
    assert 0 < done <= 30 - written
    reference = tmp_path / "reference"
    generate_masks(images, reference, model=tiny_image_model_dir, batch_size=4, progress=False, **AMG)
    got, expected = read_rows(out), read_rows(reference)
    assert got.keys() == expected.keys() and len(got) == 30
    for row_id in got:
        assert got[row_id]["records"] == expected[row_id]["records"]
    assert not [p for p in out.iterdir() if not p.name.startswith("part-")], "temporary files were left behind"


@pytest.mark.slow
def test_two_node_cluster(photos, tiny_image_model_dir, tmp_path, request):
    """Two raylets on this machine, one CPU each: the two workers run one on each node."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # the module's local cluster, if it ran first
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, **{k: v for k, v in RAY_ARGS.items() if k != "include_dashboard"})
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        parents = set()

        def watch():
            end = time.monotonic() + 120
            while time.monotonic() < end and len(parents) < 2:
                for process in ray_processes():
                    if "MapWorker(MapBatches(PartWriter))" in " ".join(process.cmdline()):
                        parents.add(process.ppid())
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        out = tmp_path / "out"
        images = _many_images(tmp_path / "images", 12)
        summary = generate_masks(images, out, model=tiny_image_model_dir, workers=2, cpus_per_worker=1, batch_size=1, progress=False, **AMG)
        watcher.join()
        assert summary.done == 12
        assert len(parents) == 2, "the two workers did not run under two raylets"
        rows = read_rows(out)
        for name in ("000.png", "007.png"):
            assert json.loads(rows[name]["records"]) == single_process_records(tiny_image_model_dir, images / name)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert_no_ray_processes()
