"""Building blocks shared by both pipelines: option checks, prompts, masks (COCO RLE), reading images."""
