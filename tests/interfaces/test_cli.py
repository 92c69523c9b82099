"""The ``sam2-pipelines`` command: argument parsing and errors, and real runs on the tiny checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_pipelines import cli, testing
from sam2_pipelines.core.masks import decode_rle
from sam2_pipelines.io.video import open_video
from sam2_pipelines.io.visualize import overlay_records

ROOT = Path(__file__).resolve().parents[2]
AMG = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
CPU = ["--device", "cpu", "--no-progress"]


def run_cli(*args, env=None):
    """Run ``python -m sam2_pipelines.cli`` in a subprocess (the console script's code path)."""
    environment = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {}))
    return subprocess.run([sys.executable, "-m", "sam2_pipelines.cli", *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=600)


def test_console_script_points_at_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["sam2-pipelines"] == "sam2_pipelines.cli:main"
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("generate-masks", "track", "convert"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["track", "v.mp4", "--point", "1,2,5", "--out", "o"], "label must be 1 (positive) or 0 (negative)"),
        (["track", "v.mp4", "--point", "1", "--out", "o"], "--point must be X,Y or X,Y,LABEL"),
        (["track", "v.mp4", "--box", "10,10,5,20", "--out", "o"], "X1 >= X0"),
        (["track", "v.mp4", "--box", "a,b,c,d", "--out", "o"], "--box must be X0,Y0,X1,Y1"),
        (["track", "v.mp4", "--frame", "-1", "--point", "1,2", "--out", "o"], "non-negative integer"),
        (["track", "v.mp4", "--point", "1,2"], "--out"),
        (["generate-masks", "a.png", "--out", "o", "--pred-iou-thresh", "2"], "between 0 and 1"),
        (["generate-masks", "a.png", "--out", "o", "--dtype", "float64"], "invalid choice"),
        (["generate-masks", "--out", "o"], "IMAGE"),
        (["segment", "a.png"], "invalid choice"),
        ([], "COMMAND"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_track_without_prompts_is_a_usage_error(video_path, capsys):
    assert cli.main(["track", video_path, "--out", "unused"]) == 2
    assert "at least one --point, --box or --text" in capsys.readouterr().err


def test_two_boxes_for_one_object_is_a_usage_error(video_path, capsys):
    assert cli.main(["track", video_path, "--box", "1,1,5,5", "--box", "2,2,6,6", "--out", "unused"]) == 2
    assert "two --box prompts" in capsys.readouterr().err


def test_prompts_follow_frame_and_obj_in_order():
    args = cli.build_parser().parse_args(
        ["track", "v.mp4", "--out", "o", "--point", "10,20", "--point", "30,40,0", "--obj", "2", "--box", "1,2,3,4",
         "--frame", "5", "--obj", "1", "--point", "7,8", "--obj", "2", "--point", "9,9"]
    )
    assert cli.prompts_from_tokens(args.prompt_tokens) == [
        {"frame": 0, "obj_id": 1, "points": [[10.0, 20.0], [30.0, 40.0]], "labels": [1, 0]},
        {"frame": 0, "obj_id": 2, "box": [1.0, 2.0, 3.0, 4.0]},
        {"frame": 5, "obj_id": 1, "points": [[7.0, 8.0]], "labels": [1]},
        {"frame": 5, "obj_id": 2, "points": [[9.0, 9.0]], "labels": [1]},
    ]


def test_missing_files_are_reported(tmp_path, capsys):
    assert cli.main(["generate-masks", str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 1
    assert "image not found" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert cli.main(["generate-masks", str(text), "--out", str(tmp_path)]) == 1
    assert "could not read image file" in capsys.readouterr().err
    assert cli.main(["track", str(tmp_path / "nope.mp4"), "--point", "1,1", "--out", str(tmp_path)]) == 1
    assert "video not found" in capsys.readouterr().err
    assert cli.main(["convert", str(tmp_path / "nope.pt"), str(tmp_path / "out")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_a_directory_that_is_not_a_model_is_reported(tmp_path, capsys):
    image = tmp_path / "image.png"
    Image.fromarray(testing.synthetic_image()).save(image)
    (tmp_path / "empty").mkdir()
    assert cli.main(["generate-masks", str(image), "--out", str(tmp_path / "out"), "--model", str(tmp_path / "empty"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"could not load {str(tmp_path / 'empty')!r} for mask-generation" in err and "Traceback" not in err


def test_unreachable_model_fails_with_one_paragraph(tmp_path):
    image = tmp_path / "image.png"
    Image.fromarray(testing.synthetic_image()).save(image)
    result = run_cli("generate-masks", image, "--out", tmp_path / "out", "--model", "sam2-pipelines-tests/no-such-model",
                     env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert "\n" not in message  # one paragraph
    assert "--model" in message and "save_pretrained" in message and ".pt" in message
    assert not (tmp_path / "out").exists()


def test_generate_masks_writes_coco_rle_and_overlay(tiny_image_model_dir, mask_generator, tmp_path, capsys):
    images = [testing.synthetic_image(seed=0), testing.synthetic_image(96, 128, seed=1)]
    paths = []
    for index, array in enumerate(images):
        paths.append(tmp_path / f"image{index}.png")
        Image.fromarray(array).save(paths[-1])
    out = tmp_path / "out"
    status = cli.main(["generate-masks", *map(str, paths), "--out", str(out), "--model", tiny_image_model_dir, "--device", "cpu", "--no-progress", *AMG])
    assert status == 0
    assert "image0.png" in capsys.readouterr().out
    for path, array in zip(paths, images):
        document = json.loads((out / f"{path.stem}.json").read_text())
        assert document["image"] == {"file_name": path.name, "height": array.shape[0], "width": array.shape[1]}
        expected = mask_generator(Image.fromarray(array), points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, output_mode="coco_rle")["records"]
        annotations = document["annotations"]
        assert len(annotations) == len(expected)
        for annotation, record in zip(annotations, expected):
            mask = decode_rle(annotation["segmentation"])
            assert mask.shape == array.shape[:2]
            assert np.array_equal(mask, decode_rle(record["segmentation"]))
            assert annotation["area"] == int(mask.sum())
            assert annotation["bbox"] == pytest.approx(list(record["bbox"]))
            assert annotation["predicted_iou"] == pytest.approx(float(record["predicted_iou"]), abs=1e-5)
        overlay = np.asarray(Image.open(out / f"{path.stem}_overlay.png"))
        assert np.array_equal(overlay, overlay_records(array, expected))


def test_generate_masks_with_text(tiny_sam3_model_dir, tiny_image_model_dir, tmp_path, capsys):
    """--text segments every instance of the concepts with a Sam3Model; the JSON holds the pipeline's records."""
    from transformers import pipeline

    array = testing.synthetic_image()
    path = tmp_path / "photo.png"
    Image.fromarray(array).save(path)
    out = tmp_path / "out"
    argv = ["generate-masks", str(path), "--out", str(out), "--device", "cpu", "--no-progress", "--text", "red car", "--text", "dog"]
    assert cli.main([*argv, "--model", tiny_sam3_model_dir, "--score-threshold", "0.25"]) == 0
    document = json.loads((out / "photo.json").read_text())
    expected = pipeline("mask-generation", model=tiny_sam3_model_dir)(array, text=["red car", "dog"], score_threshold=0.25, output_mode="coco_rle")["records"]
    assert 0 < len(document["annotations"]) == len(expected)
    assert {a["concept"] for a in document["annotations"]} == {r["concept"] for r in expected}
    for annotation, record in zip(document["annotations"], expected):
        assert annotation["concept"] == record["concept"] and annotation["score"] == pytest.approx(record["score"], abs=1e-6)
        assert np.array_equal(decode_rle(annotation["segmentation"]), decode_rle(record["segmentation"]))
    capsys.readouterr()
    other = tmp_path / "other"
    assert cli.main([*argv[:3], str(other), *argv[4:], "--model", tiny_image_model_dir]) == 1  # not a text model
    assert "--text needs SAM 3's text model" in capsys.readouterr().err and not other.exists()
    assert cli.main([*argv, "--model", tiny_sam3_model_dir, "--points-per-side", "4"]) == 2
    assert "--points-per-side set automatic mask generation" in capsys.readouterr().err
    assert cli.main(["generate-masks", str(path), "--out", str(other), "--score-threshold", "0.3", "--model", tiny_image_model_dir]) == 2
    assert "--score-threshold applies with --text only" in capsys.readouterr().err and not other.exists()


def test_track_writes_palette_pngs_overlay_and_json(tiny_video_model_dir, video_path, tmp_path):
    from transformers import pipeline

    tracker = pipeline("video-object-tracking", model=tiny_video_model_dir)
    out = tmp_path / "out"
    prompts = ["--frame", "0", "--obj", "1", "--point", "16,48", "--obj", "2", "--box", "60,30,90,60"]
    assert cli.main(["track", video_path, *prompts, "--out", str(out), "--model", tiny_video_model_dir, "--device", "cpu", "--no-progress"]) == 0
    expected = tracker(video_path, prompts=[
        {"frame": 0, "obj_id": 1, "points": [[16.0, 48.0]], "labels": [1]},
        {"frame": 0, "obj_id": 2, "box": [60.0, 30.0, 90.0, 60.0]},
    ])
    document = json.loads((out / "tracks.json").read_text())
    assert [f["frame_idx"] for f in document["frames"]] == [int(r["frame_idx"]) for r in expected] == list(range(8))
    pngs = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(8)]
    for frame, reference, png in zip(document["frames"], expected, pngs):
        assert frame["object_ids"] == [int(i) for i in reference["object_ids"]] == [1, 2]
        for rle, mask in zip(frame["masks"], np.asarray(reference["masks"])):
            assert np.array_equal(decode_rle(rle), mask.reshape(mask.shape[-2:]))
        labels = np.asarray(Image.open(png))
        assert Image.open(png).mode == "P" and labels.shape == (96, 128)
        assert set(np.unique(labels)) <= {0, 1, 2}
        for obj_id, rle in zip(frame["object_ids"], frame["masks"]):
            assert np.all(decode_rle(rle)[labels == obj_id])  # each labelled pixel belongs to that object's mask
    assert any(np.asarray(r["masks"]).any() for r in expected)  # the tiny model does track something
    assert any((np.asarray(Image.open(p)) > 0).any() for p in pngs)
    overlay = open_video(str(out / "overlay.mp4"))
    assert len(overlay) == 8 and (overlay.height, overlay.width) == (96, 128)


def test_track_text_writes_every_instance_with_its_concept(tiny_sam3_video_model_dir, video_path, tmp_path):
    from transformers import pipeline

    out = tmp_path / "out"
    argv = ["track", video_path, "--text", "red car", "--frame", "2", "--text", "dog", "--out", str(out), "--model", tiny_sam3_video_model_dir, "--no-progress"]
    assert cli.main(argv) == 0
    expected = pipeline("video-object-tracking", model=tiny_sam3_video_model_dir)(video_path, prompts=[{"frame": 0, "text": ["red car"]}, {"frame": 2, "text": ["dog"]}])
    document = json.loads((out / "tracks.json").read_text())
    assert document["prompts"] == [{"frame": 0, "text": ["red car"]}, {"frame": 2, "text": ["dog"]}]
    assert len(document["frames"]) == len(expected) == 8
    for frame, reference in zip(document["frames"], expected):
        assert frame["object_ids"] == reference["object_ids"] and frame["concepts"] == reference["concepts"]
        assert [decode_rle(m).tolist() for m in frame["masks"]] == [m[0].tolist() for m in reference["masks"]]
    assert any(f["object_ids"] for f in document["frames"]) and (out / "overlay.mp4").is_file()


def test_track_text_needs_a_text_model_and_no_clicks(tiny_video_model_dir, tiny_sam3_video_model_dir, video_path, tmp_path, capsys):
    assert cli.main(["track", video_path, "--text", "car", "--point", "1,1", "--out", str(tmp_path / "a")]) == 2
    assert "--text cannot be combined with --point/--box" in capsys.readouterr().err
    assert cli.main(["track", video_path, "--obj", "2", "--text", "car", "--out", str(tmp_path / "a")]) == 2
    assert "--obj applies to --point/--box" in capsys.readouterr().err
    assert cli.main(["track", video_path, "--text", "car", "--out", str(tmp_path / "b"), "--model", tiny_video_model_dir, "--no-progress"]) == 1
    assert "text prompts need a text tracker" in capsys.readouterr().err
    assert cli.main(["track", video_path, "--point", "5,5", "--out", str(tmp_path / "c"), "--model", tiny_sam3_video_model_dir, "--no-progress"]) == 1
    assert "a text tracker (Sam3VideoModel) takes prompts" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_convert_meta_checkpoint(tmp_path):
    import torch
    from sam2.build_sam import build_sam2
    from transformers import pipeline

    from sam2_pipelines import load_checkpoint

    torch.manual_seed(0)
    meta = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    checkpoint = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": meta.state_dict()}, checkpoint)
    del meta
    out = tmp_path / "converted"
    result = run_cli("convert", checkpoint, out)
    assert result.returncode == 0, result.stderr
    tracker = pipeline("video-object-tracking", model=str(out))
    reference, _ = load_checkpoint(checkpoint, kind="video")
    converted = tracker.model.state_dict()
    assert converted.keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(converted[key], value), key
    bad = run_cli("convert", checkpoint, tmp_path / "bad", "--size", "large")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "large" in bad.stderr


def test_serve_reports_models_it_cannot_use_before_serving(tiny_image_model_dir, tmp_path, capsys):
    """serve loads both models first: an unknown model or an image-only video model is one message, status 1."""
    pytest.importorskip("gradio")
    missing = tmp_path / "no-such-model"
    assert cli.main(["serve", "--model", str(missing), "--device", "cpu"]) == 1
    assert str(missing) in capsys.readouterr().err
    assert cli.main(["serve", "--model", tiny_image_model_dir, "--device", "cpu"]) == 1
    assert "image-only checkpoint" in capsys.readouterr().err


def test_track_leaves_no_partial_outputs(tiny_video_model_dir, video_path, tmp_path, monkeypatch, capsys):
    """A failure while writing (here: the overlay's disk is full) leaves the earlier run's outputs as they were."""
    from sam2_pipelines.io import video as video_io

    out = tmp_path / "out"
    command = ["track", video_path, "--frame", "0", "--obj", "1", "--point", "16,48", "--out", str(out),
               "--model", tiny_video_model_dir, "--device", "cpu", "--no-progress"]
    assert cli.main(command) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video_io, "write_overlay_video", full_disk)
    assert cli.main([*command[:6], "--point", "30,40", *command[8:]]) == 1  # one line, no traceback
    assert "No space left on device" in capsys.readouterr().err.splitlines()[-1]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and sorted(p.name for p in out.iterdir()) == ["masks", "overlay.mp4", "tracks.json"]


def test_an_interrupted_track_leaves_no_partial_outputs(tiny_video_model_dir, video_path, tmp_path, monkeypatch):
    """Ctrl-C half-way through the frames (outputs of 3 frames already written in the staging folder): the earlier
    run's outputs stay as they were, the staging folder is gone, and an --out the run made is removed again."""
    from sam2_pipelines.io.track_outputs import TrackOutputs

    out = tmp_path / "out"
    command = ["track", video_path, "--point", "16,48", "--out", str(out), "--model", tiny_video_model_dir, *CPU]
    assert cli.main(command) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    add = TrackOutputs.add

    def interrupted(self, result):
        if result["frame_idx"] == 3:
            raise KeyboardInterrupt
        add(self, result)

    monkeypatch.setattr(TrackOutputs, "add", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.main([*command[:2], "--point", "30,40", *command[4:]])
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == ["masks", "overlay.mp4", "tracks.json"]
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        cli.main([*command[:5], str(fresh), *command[6:]])
    assert not fresh.exists()


def test_track_refuses_a_folder_where_it_writes_a_file(tiny_video_model_dir, video_path, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "tracks.json").mkdir(parents=True)
    code = cli.main(["track", video_path, "--frame", "0", "--obj", "1", "--point", "16,48", "--out", str(out),
                     "--model", tiny_video_model_dir, "--device", "cpu", "--no-progress"])
    assert code != 0 and "tracks.json is a folder" in capsys.readouterr().err


def test_filesystem_failures_are_one_line(tiny_video_model_dir, video_path, tmp_path, capsys):
    """--out/masks being a file: an error line, exit status 1, no traceback."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "masks").write_text("not a folder")
    code = cli.main(["track", video_path, "--point", "16,48", "--out", str(out), "--model", tiny_video_model_dir, "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("sam2-pipelines track: error:")
    assert (out / "masks").read_text() == "not a folder"


def test_a_truncated_model_file_is_one_line(tiny_image_model_dir, tmp_path, capsys):
    import shutil

    from PIL import Image

    image_file = tmp_path / "photo.png"
    Image.fromarray(testing.synthetic_image()).save(image_file)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_image_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code = cli.main(["generate-masks", str(image_file), "--out", str(tmp_path / "out"), "--model", str(broken), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "could not load" in err


def test_generate_masks_never_overwrites_files_it_did_not_write(tiny_image_model_dir, tmp_path, capsys):
    """--out pointed at the images' own folder: the user's scan_overlay.png stays; our own outputs are replaced."""
    from PIL import Image

    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(testing.synthetic_image()).save(folder / "scan.png")
    Image.fromarray(testing.synthetic_image(seed=3)).save(folder / "scan_overlay.png")  # the user's own file
    own = (folder / "scan_overlay.png").read_bytes()
    command = ["generate-masks", str(folder / "scan.png"), "--out", str(folder), "--model", tiny_image_model_dir,
               "--device", "cpu", "--no-progress", "--points-per-side", "2"]
    assert cli.main(command) == 2
    assert "did not write" in capsys.readouterr().err
    assert (folder / "scan_overlay.png").read_bytes() == own and not (folder / "scan.json").exists()
    out = tmp_path / "out"
    assert cli.main([*command[:3], str(out), *command[4:]]) == 0
    assert cli.main([*command[:3], str(out), *command[4:]]) == 0  # a rerun replaces its own outputs
    assert sorted(p.name for p in out.iterdir()) == ["scan.json", "scan_overlay.png"]


def _whole_list_outputs(tracker, video_path, argv, model, folder):
    """What ``track`` wrote before it streamed: the tracker's whole list of results, then the whole-list writers."""
    from sam2_pipelines.io import video as video_io
    from sam2_pipelines.io.exports import frame_record, json_ready

    args = cli.build_parser().parse_args(argv)
    prompts = cli.prompts_from_tokens(args.prompt_tokens)
    results = tracker(video_path, prompts=prompts, direction=args.direction, start_frame=args.start_frame, max_frames=args.max_frames)
    video_io.write_palette_pngs(results, folder / "masks")
    video_io.write_overlay_video(video_path, results, folder / "overlay.mp4")
    document = {"video": video_path, "model": model, "prompts": prompts, "frames": [frame_record(r) for r in results]}
    (folder / "tracks.json").write_text(json.dumps(json_ready(document)))
    return results


@pytest.mark.parametrize("prompts", [
    ["--obj", "1", "--point", "16,48", "--obj", "2", "--box", "60,30,90,60"],
    ["--frame", "3", "--obj", "300", "--point", "40,30", "--obj", "0", "--point", "16,48", "--direction", "both", "--max-frames", "3"],
], ids=["forward", "both-ids-beyond-the-palette"])
def test_track_streams_the_files_the_whole_list_gave(tracker, tiny_video_model_dir, video_path, tmp_path, prompts):
    """Streamed outputs equal, byte for byte, the files written from the whole list of results (out of frame
    order with --direction both; ids 300 and 0, seen in that order, get the palette values of the sorted ids)."""
    argv = ["track", video_path, *prompts, "--out", str(tmp_path / "streamed"), "--model", tiny_video_model_dir, *CPU]
    assert cli.main(argv) == 0
    results = _whole_list_outputs(tracker, video_path, argv, tiny_video_model_dir, tmp_path / "whole")
    assert any(np.asarray(r["masks"]).any() for r in results)
    files = {p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*") if p.is_file()}
    assert {p.relative_to(tmp_path / "streamed") for p in (tmp_path / "streamed").rglob("*") if p.is_file()} == files
    assert len([f for f in files if f.suffix == ".png"]) == len({r["frame_idx"] for r in results})
    for name in sorted(files):
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_track_holds_the_masks_of_one_frame_at_a_time(tiny_video_model_dir, video_path, tmp_path, monkeypatch):
    """``track`` writes each frame's outputs before the tracker makes the next frame's masks: when a frame's result
    is made, no earlier frame's masks are alive (they were all held until the end before it streamed)."""
    import weakref

    load_pipeline, alive = cli.load_pipeline, []

    def watched_pipeline(*args, **kwargs):
        tracker = load_pipeline(*args, **kwargs)

        def track(video, **options):
            results, earlier = tracker(video, **options), []
            if isinstance(results, list):  # every frame's masks exist at once
                alive.append(len(results))
                return results

            def watched():
                for result in results:
                    alive.append(sum(ref() is not None for ref in earlier))
                    earlier.append(weakref.ref(result["masks"]))
                    yield result

            return watched()

        return track

    monkeypatch.setattr(cli, "load_pipeline", watched_pipeline)
    argv = ["track", video_path, "--obj", "1", "--point", "16,48", "--obj", "2", "--box", "60,30,90,60", "--out", str(tmp_path / "out")]
    assert cli.main([*argv, "--model", tiny_video_model_dir, *CPU]) == 0
    assert len(alive) == 8 and max(alive) <= 1, alive
    assert len(list((tmp_path / "out" / "masks").glob("*.png"))) == 8


MEMORY_SCRIPT = """
import resource, sys
from sam2_pipelines import cli
video, out, model = sys.argv[1:4]
argv = ["track", video, "--out", out, "--model", model, "--device", "cpu", "--no-progress"]
for obj_id, point in enumerate(["30,40", "100,60", "200,50", "280,120", "60,200", "250,220"], start=1):
    argv += ["--obj", str(obj_id), "--point", point]
assert cli.main(argv) == 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_track_peak_memory_is_flat_in_the_video_length(tiny_video_model_dir, tmp_path):
    """Peak RSS of ``track`` (6 objects, 240x320) over 144 frames stays within 16 MB of 48 frames' (whole-list
    writing held 0.46 MB of masks per frame: 44 MB more). Both runs are past the 40 frames x264 buffers."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", HF_HUB_OFFLINE="1")

    def peak_kb(frames):
        video = testing.synthetic_video(tmp_path / f"v{frames}.mp4", num_frames=frames, height=240, width=320)
        done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(video), str(tmp_path / f"out{frames}"), tiny_video_model_dir],
                              capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert len(list((tmp_path / f"out{frames}" / "masks").glob("*.png"))) == frames
        return int(done.stdout.split()[-1])

    short, long = peak_kb(48), peak_kb(144)
    assert long - short < 16 * 1024, (short, long)
