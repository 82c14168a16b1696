"""The REST API (`cadre serve`): runs, reviews and webhooks over HTTP, scoped by tenant."""
