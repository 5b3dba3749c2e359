"""The content folder, read: which files are content (``scan``), what their fields mean (``fields``), the load (``loader``).

``memo`` writes a whole load to a file, for the next start of the same folder.
"""
