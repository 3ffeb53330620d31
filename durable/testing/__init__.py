"""Helpers for testing durable workflows and stores."""
