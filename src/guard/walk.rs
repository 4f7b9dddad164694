//! Which tables a parsed statement reads and which it writes, with the scoping of CTE names that
//! PostgreSQL applies: a CTE name hides a table of the same name only inside its WITH clause's
//! statement (and, without RECURSIVE, only after its own definition).

use pg_query::protobuf::{
    self, node::Node as N, Node, ObjectType, RangeVar, SelectStmt, WithClause,
};

use super::net;

/// The tables one SQL string (one or more statements) touches, each listed once in order of
/// appearance. Names keep their PostgreSQL schema (`public.projects`) when the SQL gives one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tables {
    /// Tables read: FROM, JOIN, USING, subqueries, CTE bodies, `SELECT ... FOR UPDATE`, `COPY ... TO`.
    pub read: Vec<String>,
    /// Tables written: INSERT, UPDATE, DELETE, MERGE and TRUNCATE targets, `SELECT INTO`,
    /// `COPY ... FROM`, and the tables of DDL statements.
    pub written: Vec<String>,
}

impl Tables {
    /// Both lists, written first, each name with whether it is written.
    pub fn iter(&self) -> impl Iterator<Item = (&str, bool)> {
        let written = self.written.iter().map(|t| (t.as_str(), true));
        written.chain(self.read.iter().map(|t| (t.as_str(), false)))
    }

    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.written.is_empty()
    }

    fn add(list: &mut Vec<String>, name: String) {
        if !list.contains(&name) {
            list.push(name);
        }
    }
}

/// Walks every statement of `result`. Relations the walk does not place (a node kind it does not
/// descend into) are still found by [`net::relations`] and counted as read, so a gap in the walk
/// can refuse a statement but never lets a table through unseen.
pub(crate) fn tables(result: &protobuf::ParseResult) -> Tables {
    let mut walker = Walker::default();
    for raw in &result.stmts {
        if let Some(stmt) = &raw.stmt {
            walker.node(stmt);
        }
    }
    let Walker {
        mut tables, placed, ..
    } = walker;
    for found in net::relations(result) {
        if !placed.contains(&(found.location, found.relname.clone())) {
            Tables::add(&mut tables.read, found.name());
        }
    }
    tables
}

#[derive(Default)]
struct Walker<'t> {
    /// CTE names visible at this point, innermost last.
    ctes: Vec<&'t str>,
    tables: Tables,
    /// `(location, relname)` of every `RangeVar` the walk has placed (as a table or a CTE).
    placed: Vec<(i32, String)>,
}

pub(crate) fn qualified(rv: &RangeVar) -> String {
    // A catalog (database) name must be the current database's, so it adds nothing.
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

impl<'t> Walker<'t> {
    fn place(&mut self, rv: &RangeVar) {
        self.placed.push((rv.location, rv.relname.clone()));
    }

    /// A relation in a FROM-like position: a visible CTE or a table read.
    fn range_var(&mut self, rv: &'t RangeVar) {
        self.place(rv);
        let is_cte = rv.schemaname.is_empty() && self.ctes.iter().rev().any(|c| *c == rv.relname);
        if !is_cte {
            Tables::add(&mut self.tables.read, qualified(rv));
        }
    }

    /// A relation that can only be a table (a CTE cannot be a DML target, locked or copied).
    fn table(&mut self, rv: &RangeVar, written: bool) {
        self.place(rv);
        let list = if written {
            &mut self.tables.written
        } else {
            &mut self.tables.read
        };
        Tables::add(list, qualified(rv));
    }

    fn relations(&mut self, nodes: &'t [Node], written: bool) {
        for n in nodes {
            if let Some(N::RangeVar(rv)) = &n.node {
                self.table(rv, written);
            }
        }
    }

    /// Runs `f` with the CTEs of `with` visible, then hides them again.
    fn scoped(&mut self, with: Option<&'t WithClause>, f: impl FnOnce(&mut Self)) {
        let mark = self.ctes.len();
        if let Some(with) = with {
            self.with(with);
        }
        f(self);
        self.ctes.truncate(mark);
    }

    fn with(&mut self, with: &'t WithClause) {
        let ctes = with.ctes.iter().filter_map(|n| match &n.node {
            Some(N::CommonTableExpr(cte)) => Some(cte),
            _ => None,
        });
        if with.recursive {
            // WITH RECURSIVE: every CTE of the list is visible in all of them.
            self.ctes.extend(ctes.clone().map(|c| c.ctename.as_str()));
            for cte in ctes {
                self.opt(&cte.ctequery);
            }
        } else {
            // A CTE sees the ones before it, not itself: `WITH t AS (SELECT * FROM t)` reads table t.
            for cte in ctes {
                self.opt(&cte.ctequery);
                self.ctes.push(cte.ctename.as_str());
            }
        }
    }

    // Called on the parse tree's `Option` fields as they are: each call a plain borrow.
    #[allow(clippy::ref_option)]
    fn opt(&mut self, node: &'t Option<Box<Node>>) {
        if let Some(n) = node {
            self.node(n);
        }
    }

    fn all(&mut self, nodes: &'t [Node]) {
        for n in nodes {
            self.node(n);
        }
    }

    fn select(&mut self, s: &'t SelectStmt) {
        self.scoped(s.with_clause.as_ref(), |w| {
            if let Some(rel) = s.into_clause.as_ref().and_then(|i| i.rel.as_ref()) {
                w.table(rel, true);
            }
            w.all(&s.from_clause);
            w.all(&s.distinct_clause);
            w.all(&s.target_list);
            w.opt(&s.where_clause);
            w.all(&s.group_clause);
            w.opt(&s.having_clause);
            w.all(&s.window_clause);
            w.all(&s.values_lists);
            w.all(&s.sort_clause);
            w.opt(&s.limit_offset);
            w.opt(&s.limit_count);
            w.all(&s.locking_clause);
            if let Some(l) = &s.larg {
                w.select(l);
            }
            if let Some(r) = &s.rarg {
                w.select(r);
            }
        });
    }

    // Called on the parse tree's `Option` fields as they are: each call a plain borrow.
    #[allow(clippy::ref_option)]
    fn returning(&mut self, clause: &'t Option<protobuf::ReturningClause>) {
        if let Some(r) = clause {
            self.all(&r.exprs);
        }
    }

    fn window(&mut self, w: &'t protobuf::WindowDef) {
        self.all(&w.partition_clause);
        self.all(&w.order_clause);
        self.opt(&w.start_offset);
        self.opt(&w.end_offset);
    }

    // Called on the parse tree's `Option` fields as they are: each call a plain borrow.
    #[allow(clippy::ref_option)]
    fn json_value(&mut self, v: &'t Option<Box<protobuf::JsonValueExpr>>) {
        if let Some(v) = v {
            self.opt(&v.raw_expr);
            self.opt(&v.formatted_expr);
        }
    }

    fn drop(&mut self, d: &protobuf::DropStmt) {
        let tables = [
            ObjectType::ObjectTable,
            ObjectType::ObjectView,
            ObjectType::ObjectMatview,
            ObjectType::ObjectForeignTable,
        ];
        if !tables.iter().any(|t| *t as i32 == d.remove_type) {
            return;
        }
        for object in &d.objects {
            if let Some(N::List(list)) = &object.node {
                let parts: Vec<&str> = list
                    .items
                    .iter()
                    .filter_map(|i| match &i.node {
                        Some(N::String(s)) => Some(s.sval.as_str()),
                        _ => None,
                    })
                    .collect();
                if parts.is_empty() {
                    continue;
                }
                // [catalog.]schema.table: keep the last two parts, as for a RangeVar.
                let name = parts[parts.len().saturating_sub(2)..].join(".");
                Tables::add(&mut self.tables.written, name);
            }
        }
    }

    /// Any node: statements, FROM items and expressions, each walked in its own way.
    fn node(&mut self, node: &'t Node) {
        let Some(n) = &node.node else { return };
        match n {
            // Statements.
            N::SelectStmt(s) => self.select(s),
            N::InsertStmt(s) => self.scoped(s.with_clause.as_ref(), |w| {
                if let Some(rel) = &s.relation {
                    w.table(rel, true);
                }
                w.all(&s.cols);
                w.opt(&s.select_stmt);
                if let Some(c) = &s.on_conflict_clause {
                    if let Some(infer) = &c.infer {
                        w.all(&infer.index_elems);
                        w.opt(&infer.where_clause);
                    }
                    w.all(&c.target_list);
                    w.opt(&c.where_clause);
                }
                w.returning(&s.returning_clause);
            }),
            N::UpdateStmt(s) => self.scoped(s.with_clause.as_ref(), |w| {
                if let Some(rel) = &s.relation {
                    w.table(rel, true);
                }
                w.all(&s.from_clause);
                w.all(&s.target_list);
                w.opt(&s.where_clause);
                w.returning(&s.returning_clause);
            }),
            N::DeleteStmt(s) => self.scoped(s.with_clause.as_ref(), |w| {
                if let Some(rel) = &s.relation {
                    w.table(rel, true);
                }
                w.all(&s.using_clause);
                w.opt(&s.where_clause);
                w.returning(&s.returning_clause);
            }),
            N::MergeStmt(s) => self.scoped(s.with_clause.as_ref(), |w| {
                if let Some(rel) = &s.relation {
                    w.table(rel, true);
                }
                w.opt(&s.source_relation);
                w.opt(&s.join_condition);
                w.all(&s.merge_when_clauses);
                w.returning(&s.returning_clause);
            }),
            N::MergeWhenClause(c) => {
                self.opt(&c.condition);
                self.all(&c.target_list);
                self.all(&c.values);
            }
            N::TruncateStmt(s) => self.relations(&s.relations, true),
            N::CopyStmt(s) => {
                if let Some(rel) = &s.relation {
                    self.table(rel, s.is_from);
                }
                self.opt(&s.query);
                self.opt(&s.where_clause);
            }
            N::ExplainStmt(s) => self.opt(&s.query),
            N::PrepareStmt(s) => self.opt(&s.query),
            N::DeclareCursorStmt(s) => self.opt(&s.query),
            N::CreateTableAsStmt(s) => {
                if let Some(rel) = s.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.table(rel, true);
                }
                self.opt(&s.query);
            }
            N::ViewStmt(s) => {
                if let Some(rel) = &s.view {
                    self.table(rel, true);
                }
                self.opt(&s.query);
            }
            N::LockStmt(s) => self.relations(&s.relations, false),
            N::DropStmt(s) => self.drop(s),
            N::CreateStmt(s) => {
                if let Some(rel) = &s.relation {
                    self.table(rel, true);
                }
            }
            N::AlterTableStmt(s) => {
                if let Some(rel) = &s.relation {
                    self.table(rel, s.objtype != ObjectType::ObjectIndex as i32);
                }
            }
            N::IndexStmt(s) => {
                if let Some(rel) = &s.relation {
                    self.table(rel, true);
                }
                self.all(&s.index_params);
                self.opt(&s.where_clause);
            }
            N::RenameStmt(s) => {
                if let Some(rel) = &s.relation {
                    self.table(rel, true);
                }
            }
            N::RefreshMatViewStmt(s) => {
                if let Some(rel) = &s.relation {
                    self.table(rel, true);
                }
            }
            N::CallStmt(s) => {
                if let Some(f) = &s.funccall {
                    self.func(f);
                }
            }

            // FROM items.
            N::RangeVar(rv) => self.range_var(rv),
            N::JoinExpr(j) => {
                self.opt(&j.larg);
                self.opt(&j.rarg);
                self.opt(&j.quals);
            }
            N::RangeSubselect(r) => self.opt(&r.subquery),
            N::RangeFunction(r) => self.all(&r.functions),
            N::RangeTableSample(r) => {
                self.opt(&r.relation);
                self.all(&r.args);
                self.opt(&r.repeatable);
            }
            N::RangeTableFunc(r) => {
                self.opt(&r.docexpr);
                self.opt(&r.rowexpr);
                self.all(&r.columns);
            }
            N::RangeTableFuncCol(c) => {
                self.opt(&c.colexpr);
                self.opt(&c.coldefexpr);
            }
            N::JsonTable(t) => {
                self.json_value(&t.context_item);
                self.all(&t.passing);
            }
            // `FOR UPDATE OF b` names FROM items (often aliases), not further tables.
            N::LockingClause(c) => {
                for rel in &c.locked_rels {
                    if let Some(N::RangeVar(rv)) = &rel.node {
                        self.place(rv);
                    }
                }
            }

            // Expressions.
            N::SubLink(s) => {
                self.opt(&s.testexpr);
                self.opt(&s.subselect);
            }
            N::AExpr(e) => {
                self.opt(&e.lexpr);
                self.opt(&e.rexpr);
            }
            N::BoolExpr(e) => self.all(&e.args),
            N::FuncCall(f) => self.func(f),
            N::TypeCast(e) => self.opt(&e.arg),
            N::CaseExpr(e) => {
                self.opt(&e.arg);
                self.all(&e.args);
                self.opt(&e.defresult);
            }
            N::CaseWhen(e) => {
                self.opt(&e.expr);
                self.opt(&e.result);
            }
            N::CoalesceExpr(e) => self.all(&e.args),
            N::MinMaxExpr(e) => self.all(&e.args),
            N::NullTest(e) => self.opt(&e.arg),
            N::BooleanTest(e) => self.opt(&e.arg),
            N::RowExpr(e) => self.all(&e.args),
            N::AArrayExpr(e) => self.all(&e.elements),
            N::AIndirection(e) => {
                self.opt(&e.arg);
                self.all(&e.indirection);
            }
            N::AIndices(e) => {
                self.opt(&e.lidx);
                self.opt(&e.uidx);
            }
            N::ResTarget(t) => {
                self.all(&t.indirection);
                self.opt(&t.val);
            }
            N::MultiAssignRef(r) => self.opt(&r.source),
            N::SortBy(s) => self.opt(&s.node),
            N::WindowDef(w) => self.window(w),
            N::CollateClause(c) => self.opt(&c.arg),
            N::NamedArgExpr(e) => self.opt(&e.arg),
            N::GroupingSet(g) => self.all(&g.content),
            N::List(l) => self.all(&l.items),
            N::IndexElem(e) => self.opt(&e.expr),
            N::XmlExpr(e) => {
                self.all(&e.named_args);
                self.all(&e.args);
            }
            N::XmlSerialize(e) => self.opt(&e.expr),
            N::JsonArrayQueryConstructor(c) => self.opt(&c.query),
            N::JsonObjectConstructor(c) => self.all(&c.exprs),
            N::JsonArrayConstructor(c) => self.all(&c.exprs),
            N::JsonKeyValue(kv) => {
                self.opt(&kv.key);
                self.json_value(&kv.value);
            }
            N::JsonValueExpr(v) => {
                self.opt(&v.raw_expr);
                self.opt(&v.formatted_expr);
            }
            N::JsonIsPredicate(p) => self.opt(&p.expr),
            N::JsonFuncExpr(f) => {
                self.json_value(&f.context_item);
                self.all(&f.passing);
            }
            _ => {}
        }
    }

    fn func(&mut self, f: &'t protobuf::FuncCall) {
        self.all(&f.args);
        self.all(&f.agg_order);
        self.opt(&f.agg_filter);
        if let Some(w) = &f.over {
            self.window(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relations the walk left to the net: none for the statement shapes batches send.
    fn unplaced(sql: &str) -> Vec<String> {
        let parsed = pg_query::parse(sql, 0).unwrap();
        let mut walker = Walker::default();
        for raw in &parsed.protobuf.stmts {
            if let Some(stmt) = &raw.stmt {
                walker.node(stmt);
            }
        }
        net::relations(&parsed.protobuf)
            .into_iter()
            .filter(|f| !walker.placed.contains(&(f.location, f.relname.clone())))
            .map(|f| f.name())
            .collect()
    }

    #[test]
    fn the_walk_places_every_relation_of_dml() {
        for sql in [
            "SELECT * FROM a JOIN b USING (id) LEFT JOIN LATERAL (SELECT * FROM c) x ON true FOR UPDATE OF a",
            "SELECT (SELECT max(id) FROM d), CASE WHEN EXISTS (SELECT 1 FROM e) THEN 1 END FROM f TABLESAMPLE SYSTEM (1)",
            "SELECT coalesce((SELECT 1 FROM g), 2), array(SELECT 1 FROM h), count(*) FILTER (WHERE id IN (SELECT id FROM i)) FROM j",
            "SELECT * FROM k WHERE (id, x) = ANY (SELECT id, x FROM l) ORDER BY (SELECT 1 FROM m) LIMIT (SELECT 1 FROM n)",
            "WITH RECURSIVE t AS (SELECT 1 FROM o UNION SELECT 1 FROM t) SELECT * FROM t",
            "INSERT INTO p (a) SELECT a FROM q ON CONFLICT (a) WHERE a > (SELECT 1 FROM r) DO UPDATE SET a = (SELECT 1 FROM s) RETURNING (SELECT 1 FROM t2)",
            "UPDATE u SET (a, b) = (SELECT a, b FROM v) FROM w WHERE u.id = w.id",
            "DELETE FROM x USING y WHERE x.id = y.id AND NOT EXISTS (SELECT 1 FROM z)",
            "MERGE INTO aa USING (SELECT * FROM bb) s ON aa.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
            "SELECT * FROM generate_series(1, (SELECT max(id) FROM cc)) g, json_to_record((SELECT j FROM dd)) AS r(a int)",
            "SELECT * INTO ee FROM ff",
            "CREATE TABLE gg AS SELECT * FROM hh",
            "COPY (SELECT * FROM ii) TO STDOUT",
            "EXPLAIN SELECT * FROM jj",
            "TRUNCATE kk",
            "LOCK TABLE ll",
            "SELECT json_arrayagg(x) FROM mm, XMLTABLE('/a' PASSING (SELECT doc FROM nn) COLUMNS c int PATH 'c') t",
            "SELECT x COLLATE \"C\", ROW(1, (SELECT 1 FROM oo)), (SELECT ARRAY[1])[1], sum(x) OVER (PARTITION BY (SELECT 1 FROM pp)) FROM qq",
            "SELECT id FROM rr GROUP BY GROUPING SETS ((id), ()) HAVING count(*) > (SELECT 1 FROM ss)",
            "PREPARE st AS SELECT * FROM tt",
        ] {
            assert_eq!(unplaced(sql), Vec::<String>::new(), "{sql}");
        }
    }
}
