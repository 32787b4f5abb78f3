"""The overview's live panels: one view-model built from each feature's own read services."""
