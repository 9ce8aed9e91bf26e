"""The FaceQAN App panels: EDC/ERC curves of an evaluation run, and choosing a rejection threshold."""

from .erc_panel import ERCPanel
from .rejection_panel import RejectionPanel

PANELS = (ERCPanel, RejectionPanel)

__all__ = ["ERCPanel", "PANELS", "RejectionPanel"]
