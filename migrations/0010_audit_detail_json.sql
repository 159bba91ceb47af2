-- The audit log's detail is a JSON object everywhere (core/audit.py is its one writer).
-- Lines written before as free text keep their words, as {"text": "..."}.
UPDATE audit_log SET detail = json_object('text', detail)
WHERE detail IS NOT NULL AND (json_valid(detail) = 0 OR json_type(detail) != 'object');
