"""The video-object-tracking pipeline: tracking sessions, memory and its pruning, frame feeding, text tracking."""
