"""Launched with 2 processes by tests/interfaces/test_datasets.py: shard a dataset, run both pipelines, gather.

Also writes the image rows as part files with write_sharded (beside OUT_JSON, in parts/).

Usage: torchrun --nproc_per_node 2 sharded_run.py IMAGE_MODEL_DIR VIDEO_MODEL_DIR DATASET_DIR OUT_JSON
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
from accelerate import PartialState
from transformers import pipeline

import sam2_pipelines  # noqa: F401
from sam2_pipelines.sharding import map_sharded, run_pipeline_sharded, write_sharded

image_model, video_model, dataset_dir, out_path = sys.argv[1:5]
state = PartialState(cpu=True)
images = datasets.load_from_disk(os.path.join(dataset_dir, "images"))
videos = datasets.load_from_disk(os.path.join(dataset_dir, "videos"))

generator = pipeline("mask-generation", model=image_model, device="cpu")
outputs = run_pipeline_sharded(
    generator, images, column="image", batch_size=2, state=state,
    points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, output_mode="coco_rle",
)
ranks = map_sharded(images, lambda row: state.process_index, state=state)
# the same rows written to disk as they go (nothing gathered), two rows per part file
written = write_sharded(generator, images, os.path.join(os.path.dirname(out_path), "parts"), column="image", id_column="index",
                        rows_per_file=2, state=state, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)

tracker = pipeline("video-object-tracking", model=video_model, device="cpu")


def track(row):
    results = tracker(row["video"], prompts=json.loads(row["prompts"]), output="rle")
    return {"rank": state.process_index, "frames": [[int(r["frame_idx"]), [int(i) for i in r["object_ids"]], list(r["masks"])] for r in results]}


tracks = map_sharded(videos, track, state=state)
if state.is_main_process:
    with open(out_path, "w") as handle:
        json.dump({
            "num_processes": state.num_processes,
            "ranks": ranks,
            "records": [[{"segmentation": r["segmentation"], "area": int(r["area"])} for r in o["records"]] for o in outputs],
            "tracks": tracks,
            "written": [written.done, written.failed, written.skipped],
        }, handle)
state.wait_for_everyone()
