"""Stores for deployments: the atomic Redis lock store."""
