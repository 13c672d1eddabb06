"""3-D detection tracers."""
