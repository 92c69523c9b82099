"""The mask-generation pipeline: automatic, prompted and text modes over one image-model interface, and image sessions."""
