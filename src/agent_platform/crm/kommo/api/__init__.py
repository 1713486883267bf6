"""Kommo API v4 by resource; `transport` carries every request (hook, metrics, errors, paging).

Use it through `agent_platform.crm.kommo.client.KommoClient`.
"""
