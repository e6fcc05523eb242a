"""deskphone: a Raspberry Pi SIP desk phone."""

__version__ = "0.1.0"
USER_AGENT = f"deskphone/{__version__}"
