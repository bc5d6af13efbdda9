"""Partner systems registered at an agency for the OAuth 2.0 client-credentials grant: their table and queries."""
