"""Hugging Face Spaces entry point: serves the Gradio demo in ``sam2_pipelines/demo/app.py``.

Configure the model with the ``SAM2_DEMO_MODEL`` (and ``SAM2_DEMO_VIDEO_MODEL``) environment variables.
"""

from sam2_pipelines.demo.app import main

if __name__ == "__main__":
    main()
