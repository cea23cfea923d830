"""CLIP backbones: OpenAI weights by name or file, open_clip models through an adapter, weights-file reading."""
