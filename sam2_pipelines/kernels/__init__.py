"""Fast paths with results equal to the reference: the many-prompt mask decoder, memory attention, the shared tracking step, the allocator policy, pairwise mask IoU in bounded memory."""
