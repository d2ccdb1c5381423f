"""course_lib: the small, tested library behind the image masking and inpainting course.

Each module teaches one idea and is introduced by one lesson (see README.md). The modules
that every lesson needs are imported here; the heavier ones (networks, losses, widgets) are
imported by the lessons that use them.
"""

from course_lib import config, convert, validate

__all__ = ["config", "convert", "validate"]
__version__ = "0.1.0"
