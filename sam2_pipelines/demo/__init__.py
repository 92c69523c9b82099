"""The Gradio demo of sam2-pipelines (``python -m sam2_pipelines.demo.app --model DIR``)."""
