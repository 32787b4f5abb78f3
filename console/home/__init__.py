"""The overview page every role lands on."""
