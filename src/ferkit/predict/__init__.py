"""From photos and videos to faces and expressions: face detection, the ``Recognizer``,
annotated copies, folders and videos, and the Ray engine for many files."""
