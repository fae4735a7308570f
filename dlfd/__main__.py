"""``python -m dlfd run ...``: the notebook pipeline (:func:`dlfd.pipeline.main`)."""

from .pipeline import main

raise SystemExit(main())
