# frozen_string_literal: true

module SchemaFence
  # Checks every statement a batch's connection sends while a guard is active on it (during a
  # Ruby batch); a violation raises before the statement is sent. The guard follows the
  # connection, not the thread: statements from another Thread, Fiber or Enumerator on that
  # connection are checked too, and so are the raw PG::Connection's own methods (exec,
  # exec_params, prepare, copy_data, ...). A statement prepared outside the batch cannot be
  # executed by name inside it: the guard never saw its text.
  module GuardHook
    # The thread-local key of the guard of statements sent outside any guarded connection.
    KEY = :schema_fence_guard
    # Set (fiber-locally) while an adapter method that has already checked its SQL runs.
    CHECKED = :schema_fence_guard_checked

    class << self
      # Runs the block with +guard+ checking the statements of +connection+ (an ActiveRecord
      # adapter) and, without one, of this thread's.
      def with(guard, connection = nil)
        install!
        previous = Thread.current[KEY]
        Thread.current[KEY] = guard
        attach(connection, guard)
        yield
      ensure
        Thread.current[KEY] = previous
        attach(connection, nil)
      end

      # Checks +sql+ with the guard of +holder+ (an adapter or a PG::Connection), else this
      # thread's, if one is active.
      # @raise [CrossDatabaseAccessError, GuardParseError]
      def check(sql, holder = nil)
        guard = guard_of(holder)
        guard&.check(sql.to_s)
      end

      # The active guard of +holder+, else of this thread.
      def guard_of(holder)
        holder&.instance_variable_get(:@schema_fence_guard) || Thread.current[KEY]
      end

      # Runs the block as an adapter method that checked its SQL already (its PG calls are not
      # checked again).
      def checked
        previous = Thread.current[CHECKED]
        Thread.current[CHECKED] = true
        yield
      ensure
        Thread.current[CHECKED] = previous
      end

      def checked?
        Thread.current[CHECKED]
      end

      # Prepends {AdapterMethods} to the PostgreSQL adapter and {RawMethods} to PG::Connection,
      # once.
      def install!
        return if @installed

        require "active_record/connection_adapters/postgresql_adapter"
        ActiveRecord::ConnectionAdapters::PostgreSQLAdapter.prepend(AdapterMethods)
        PG::Connection.prepend(RawMethods)
        @installed = true
      end

      private

      def attach(connection, guard)
        return unless connection

        connection.instance_variable_set(:@schema_fence_guard, guard)
        raw = connection.raw_connection
        raw.instance_variable_set(:@schema_fence_guard, guard)
        raw.instance_variable_set(:@schema_fence_prepared, guard && {})
      end
    end

    # The adapter's entry points that send SQL (ActiveRecord 6.1 and later).
    module AdapterMethods
      # Checked, then sent.
      def execute(sql, *args, **kwargs, &)
        GuardHook.check(sql, self)
        GuardHook.checked { super }
      end

      # Checked, then sent.
      def query(sql, *args, **kwargs, &)
        GuardHook.check(sql, self)
        GuardHook.checked { super }
      end

      # Checked, then sent.
      def execute_and_clear(sql, *args, **kwargs, &)
        GuardHook.check(sql, self)
        GuardHook.checked { super }
      end
    end

    # PG::Connection's methods that send SQL text, checked when the connection carries a guard
    # (unless an adapter method above checked the text already).
    module RawMethods
      %i[exec async_exec sync_exec exec_params async_exec_params sync_exec_params send_query
         send_query_params copy_data].each do |name|
        define_method(name) do |sql, *args, **kwargs, &block|
          GuardHook.check(sql, self) if @schema_fence_guard && !GuardHook.checked?
          super(sql, *args, **kwargs, &block)
        end
      end

      %i[prepare async_prepare sync_prepare send_prepare].each do |name|
        define_method(name) do |statement_name, sql, *args, **kwargs, &block|
          if @schema_fence_guard && !GuardHook.checked?
            GuardHook.check(sql, self)
            @schema_fence_prepared[statement_name.to_s] = true
          end
          super(statement_name, sql, *args, **kwargs, &block)
        end
      end

      %i[exec_prepared async_exec_prepared sync_exec_prepared send_query_prepared].each do |name|
        define_method(name) do |statement_name, *args, **kwargs, &block|
          if @schema_fence_guard && !GuardHook.checked? && !@schema_fence_prepared[statement_name.to_s]
            raise ForbiddenStatementError,
                  "statement not sent: #{statement_name.to_s.inspect} was prepared outside this batch, so the " \
                  "statement guard never saw its text; prepare it inside the batch"
          end
          super(statement_name, *args, **kwargs, &block)
        end
      end
    end
  end
end
