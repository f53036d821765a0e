"""The app's controllers: plain QObjects that own one story each and talk to the engine only through jobs.

``document`` (the model, the photo, recent files), ``editing`` (the motion, undo, keyframes, live renders),
``projects`` (project files, and what a dropped or recent file opens), ``export`` (videos and frames), ``live``
(the webcam panel's session) with ``virtual_camera`` (its output to a virtual camera), ``display`` (what the
picture shows). They report to the user through
:class:`Feedback`; the main window builds the widgets and wires these to them.
"""

from .display import DisplayController
from .document import DocumentController
from .editing import EditController
from .export import ExportController
from .feedback import Feedback
from .live import LiveController
from .projects import ProjectController

__all__ = ["DisplayController", "DocumentController", "EditController", "ExportController", "Feedback",
           "LiveController", "ProjectController"]
