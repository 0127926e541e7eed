"""Placeholder: every service's published contract routes (AsyncAPI, schemas); issue 21."""

from __future__ import annotations

from fastapi import APIRouter


def router() -> APIRouter:
    return APIRouter()
