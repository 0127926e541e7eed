"""Placeholder: every service's webhook subscription routes; issue 21."""

from __future__ import annotations

from fastapi import APIRouter


def router() -> APIRouter:
    return APIRouter()
