"""Named failures of the enrich room."""


class ModelMissingError(RuntimeError):
    """A model package or artefact is not installed; the message says how to get it."""
