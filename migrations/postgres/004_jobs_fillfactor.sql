-- 004_jobs_fillfactor: leave half of each new page of jobs free
-- (PostgreSQL).
--
-- A worker's group updates each of its jobs' rows once, in one
-- transaction (a job's start, progress and success merged), and the jobs
-- of a group were mostly created one after the other, so their rows share
-- pages. The old versions stay until that transaction commits, so each new
-- version needs room on the page beside them; where there is none,
-- PostgreSQL writes it on another page, and the update is no longer HOT:
-- a new entry in every index of jobs. With 003's fillfactor 80, a page of
-- about 26 new rows had room for about 6 updated ones: in the P1
-- benchmark, 39% of job updates were not HOT (3,847 of 9,902 for 10,000
-- jobs), each with three index entries and a lock record more. At 50 a
-- page holds about 16 new rows and room for all of them updated: 2.6% were
-- not HOT, and the run wrote 10% fewer WAL records. The jobs table takes
-- about 1.6 times the space; its indexes grow by one entry per job instead
-- of about 1.4.
--
-- As in 003, the setting applies to pages written from now on.

-- +migrate Up
ALTER TABLE jobs SET (fillfactor = 50);

-- +migrate Down
ALTER TABLE jobs SET (fillfactor = 80);
