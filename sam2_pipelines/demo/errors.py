"""How the demo's handlers report errors: every error reaches the visitor as a ``gr.Error`` with its message.

Gradio shows an exception that is not a ``gr.Error`` as a bare "Error" (the message is hidden unless the app is
launched with ``show_error=True``). A bad upload (not a video, an empty or truncated file), a click out of
range or an expired session raise ``ValueError`` in the demo's state; :func:`shown_errors` turns those, and
any other exception, into ``gr.Error(message)``; unexpected ones (not ``ValueError``/``TypeError``) are logged
with their traceback as well.
"""

import functools
import logging

LOG = logging.getLogger("sam2_pipelines.demo")


def shown_errors(handler):
    """``handler`` raising ``gr.Error(str(error))`` for any exception (a ``gr.Error`` passes as it is).

    The wrapper keeps ``handler``'s signature (Gradio reads it for ``gr.Request``, ``gr.SelectData`` and
    ``gr.Progress`` parameters)."""

    @functools.wraps(handler)
    def shown(*args, **kwargs):
        import gradio as gr

        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            if not isinstance(error, (ValueError, TypeError)):
                LOG.exception("demo handler %s failed", getattr(handler, "__name__", handler))
            raise gr.Error(str(error) or type(error).__name__) from None

    return shown
