//! Pooled connections that prepare each statement once.
//!
//! A statement sent as text costs two round trips (parse and describe,
//! then bind and execute); one prepared before costs one. Every SQL text
//! this crate sends is one of a fixed set (parameters are never spliced
//! into it), so each connection keeps the statements it has prepared, for
//! as long as it lives: a connection the pool drops takes its statements
//! with it. Prepared statements belong to the session, not to a
//! transaction, so one prepared in a transaction that rolled back stays
//! usable.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement};

/// The statements one connection has prepared, by SQL text.
#[derive(Default)]
pub(crate) struct Statements(HashMap<String, Statement>);

impl Statements {
    /// `sql` prepared on `client` (the connection these belong to), once.
    pub fn get(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// A pooled connection and its prepared statements.
pub(crate) struct Conn {
    pub client: Client,
    pub statements: Statements,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Conn {
    pub fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statements.get(&mut self.client, sql)?;
        self.client.query(&statement, params)
    }

    pub fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statements.get(&mut self.client, sql)?;
        self.client.query_opt(&statement, params)
    }

    pub fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, postgres::Error> {
        let statement = self.statements.get(&mut self.client, sql)?;
        self.client.query_one(&statement, params)
    }

    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.statements.get(&mut self.client, sql)?;
        self.client.execute(&statement, params)
    }
}

/// Connects [`Conn`]s for the pool.
pub(crate) struct Manager {
    pub config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.config.connect(NoTls)?,
            statements: Statements::default(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}
