"""The live service: the publisher that follows the content folder (``publisher``, ``watcher``), its memory and health."""
